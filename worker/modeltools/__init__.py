"""Model tools beyond plain inference: int8 quantization and its cache, export, Grad-CAM."""
