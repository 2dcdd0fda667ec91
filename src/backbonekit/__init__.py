"""backbonekit: from-scratch CNN backbones with exact weight import, and the tasks built on them."""
from backbonekit.models.backbone import Backbone, create_backbone
from backbonekit.models.registry import create_model, list_models
from backbonekit.weights import load_model, load_weights, save_weights

__all__ = ["Backbone", "create_backbone", "create_model", "list_models", "load_model", "load_weights", "save_weights"]
__version__ = "0.1.0"
