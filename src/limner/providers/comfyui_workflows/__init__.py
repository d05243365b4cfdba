"""Default ComfyUI workflows (API format) shipped with Limner: ``sd15``, ``sdxl`` and ``flux``.

Each node that Limner fills carries a marker in its ``_meta.title`` (``limner:prompt``,
``limner:negative``, ``limner:seed``, ``limner:size``, ``limner:steps``, ``limner:model``,
``limner:output``, ...); see :mod:`limner.providers.comfyui`. Load them with
``importlib.resources.files(__name__) / "sdxl.json"``.
"""

NAMES = ("sd15", "sdxl", "flux")
