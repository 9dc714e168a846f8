"""floe's Python SDK: the `floe-py` build command, and (in `guest/`) the
`floe` module that functions import inside the component."""

__version__ = "0.1.0"
