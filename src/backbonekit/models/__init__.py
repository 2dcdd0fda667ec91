from backbonekit.models.registry import create_model, default_cfg, list_models, load_model, register_model

__all__ = ["create_model", "default_cfg", "list_models", "load_model", "register_model"]
