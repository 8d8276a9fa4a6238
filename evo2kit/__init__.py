"""evo2kit: learn and run the Evo 2 DNA language model, step by step, on any machine."""

__version__ = "0.1.0"

from .api import Evo2Model, load_model  # noqa: E402
from .metrics import record_metrics  # noqa: E402
from .model import Evo2Config, StripedHyena2  # noqa: E402
from .run_settings import RunSettings, settings  # noqa: E402

__all__ = ["Evo2Config", "Evo2Model", "RunSettings", "StripedHyena2", "load_model", "record_metrics",
           "settings", "__version__"]
