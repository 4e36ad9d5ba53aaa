"""cbir core library: images, backbones, poolings, index, evaluation."""
