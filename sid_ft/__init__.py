"""sid_ft: fine-tune and run Learning-to-See-in-the-Dark models on your own RAW photos."""
from sid_ft.errors import SidFtError

__version__ = "0.1.0"

__all__ = ["SidFtError", "__version__"]
