"""A task module whose import fails with something other than an ImportError."""

raise RuntimeError("this module needs a GPU driver")
