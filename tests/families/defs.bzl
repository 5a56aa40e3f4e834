"""The two targets of a family's oracle: its forward tool and its test."""

load("//tools:defs.bzl", "spatialid_py_test")

def family_oracle(name, family, data = []):
    """<name>_forward_cli (forward_tool.h with the family's hooks in
    <name>_forward_cli.cc) and <name>_oracle_test (<name>_oracle_test.py,
    tests/python/family_oracle.py's checks with the family's parameters).

    Args:
      name: the family's file prefix ("llava").
      family: its library target ("//spatialid/families/llava").
      data: what else its test reads (chat templates...).
    """
    native.cc_binary(
        name = name + "_forward_cli",
        srcs = [name + "_forward_cli.cc"],
        deps = [
            ":forward_tool",
            family,
        ],
    )
    spatialid_py_test(
        name = name + "_oracle_test",
        src = name + "_oracle_test.py",
        data = [
            ":" + name + "_forward_cli",
            "//tests/python:family_oracle",
        ] + data,
        size = "large",
    )
