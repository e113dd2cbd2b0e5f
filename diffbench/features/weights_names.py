"""The weights (registry names in `diffbench.weights`) each built-in extractor loads, declared once
here: the builders in `diffbench.features` carry them (preflight reads them without building a
network) and the extractor modules name them in their messages. No torch is imported."""

INCEPTION = "inception-2015-12-05"
VGG16 = "vgg16-imagenet"
DINOV2_SIZES = ("vits14", "vitb14", "vitl14", "vitg14")  # torch.hub's dinov2_<size> backbones
DINOV2 = {size: f"dinov2-{size}" for size in DINOV2_SIZES}
DINOV2_VITL14 = DINOV2["vitl14"]
CLIP_VIT_L14_336 = "clip-vit-l-14-336-openai"
