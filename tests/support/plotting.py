"""Whether the picture modules are there, and the PNG signature their files start with."""
import importlib.util

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def real_plot_modules():
    """Whether the picture modules (owned by other parts of the project) exist."""
    return all(importlib.util.find_spec("damo_pipe.analyze." + m) is not None
               for m in ("heatmap", "plots"))
