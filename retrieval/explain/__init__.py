"""Why an image matched: a similarity split over the cells of a feature map, and its picture.

Pure functions of feature maps (:func:`explain_match`; the per-pooling splits in
:data:`ATTRIBUTIONS`) and :func:`explain_image`, which gets an image's maps from the one
embedding pipeline (:meth:`~retrieval.features.Embedder.embed_with_maps`).
"""

from retrieval.explain._cells import ATTRIBUTIONS, Attribution, cell_parts
from retrieval.explain._image import explain_image
from retrieval.explain._match import Explanation, explain_match, resample_sum
from retrieval.explain._overlay import overlay_png, top_cells

__all__ = ["ATTRIBUTIONS", "Attribution", "Explanation", "cell_parts", "explain_image",
           "explain_match", "overlay_png", "resample_sum", "top_cells"]
