// Error plumbing shared by every spatialid header.
//
// Library boundaries return absl::Status / absl::StatusOr. Debian's abseil
// (20220623) predates status_macros.h, so the two propagation macros live
// here. Messages name the file and what was expected, so a binary can print
// the status as one line and exit non-zero.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SPATIALID_STATUS_CONCAT_INNER_(a, b) a##b
#define SPATIALID_STATUS_CONCAT_(a, b) SPATIALID_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` yields a non-OK status.
#define SPATIALID_RETURN_IF_ERROR(expr)                    \
  do {                                                     \
    ::absl::Status spatialid_status_ = (expr);             \
    if (!spatialid_status_.ok()) return spatialid_status_; \
  } while (0)

// `lhs = *expr` if `expr` (a StatusOr) is OK, else returns its status.
#define SPATIALID_ASSIGN_OR_RETURN(lhs, expr)                                \
  SPATIALID_ASSIGN_OR_RETURN_IMPL_(                                          \
      SPATIALID_STATUS_CONCAT_(spatialid_statusor_, __LINE__), lhs, expr)

#define SPATIALID_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return std::move(tmp).status();         \
  lhs = std::move(tmp).value()
