"""collage_core: the maths of neural collage, free of any engine or UI.

Public API::

    from collage_core import load_generator, load_discriminator
    G = load_generator("path/to/ResNetGenerator.npz")      # original snapshot, native file or embedded name
    x = G.synthesize(z, classes=y)                          # (N, 3, H, W) in [-1, 1]
    x = G.synthesize(z, class_maps=weights)                 # sCBN
    x = G.synthesize(zs=[z1, z2], class_maps=weights, blends=blends)   # feature blending (+ sCBN)
    D = load_discriminator("path/to/SNResNetProjectionDiscriminator.npz"); f = D.feature_vector(x)
    E = load_encoder("path/to/encoder.safetensors"); z0 = E.encode(x)     # a start for projection
"""

from .checkpoints import (
                          CheckpointError,
                          load_discriminator,
                          load_generator,
                          read_npz,
                          save_discriminator,
                          save_generator,
)
from .conditional import resize_map
from .config import DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator
from .encoder import Encoder, load_encoder
from .generator import Generator
from .models import list_embedded_models
from .scbn import ClassCondition, MapCondition, VectorCondition

__all__ = [
    "CheckpointError", "ClassCondition", "Discriminator", "DiscriminatorConfig", "Encoder", "Generator",
    "GeneratorConfig", "MapCondition", "VectorCondition", "list_embedded_models", "load_discriminator",
    "load_encoder", "load_generator", "read_npz",
    "resize_map", "save_discriminator", "save_generator",
]
__version__ = "0.1.0"
