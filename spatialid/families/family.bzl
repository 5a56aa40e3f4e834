"""The Bazel shape of a model family folder (spatialid/families/<name>/).

`spatialid_family` declares its two libraries: `config` (config.h: the
family's config.json and preprocessor_config.json, no libtorch) and the
family itself (every other header), with the shared blocks every family
uses already in its deps; a family adds only what is its own.
"""

_FAMILY_DEPS = [
    "//spatialid/config",
    "//spatialid/families:config_adapters",
    "//spatialid/families:family",
    "//spatialid/families:forward_plan",
    "//spatialid/families:hidden_states",
    "//spatialid/families:multimodal_forward",
    "//spatialid/families:weight_names",
    "//spatialid/io:image",
    "//spatialid/io:safetensors",
    "//spatialid/nn:activation",
    "//spatialid/nn:attention",
    "//spatialid/nn:mlp",
    "//spatialid/nn:norm",
    "//spatialid/nn:rotary",
    "//spatialid/nn:text_decoder",
    "//spatialid/nn:transformer_block",
    "//spatialid/nn:upload",
    "//spatialid/nn:weights",
    "//spatialid/util:status",
    "//spatialid/vision:clip_image_processor",
    "//spatialid/vision:resize_engine",
    "@libtorch",
    "@system//:absl",
]

def spatialid_family(name, hdrs, deps = []):
    """The family `name` from `hdrs` (config.h excluded) plus its own `deps`."""
    native.exports_files(["config.h"])
    native.cc_library(
        name = "config",
        hdrs = ["config.h"],
        deps = [
            "//spatialid/config",
            "//spatialid/io:json_file",
            "@system//:absl",
            "@system//:nlohmann_json",
        ],
    )
    native.cc_library(
        name = name,
        hdrs = hdrs,
        deps = [":config"] + _FAMILY_DEPS + [d for d in deps if d not in _FAMILY_DEPS],
    )
