"""Tiny keras-hub object detectors with known output, for the detection tests."""

import numpy as np

PERSON = 1
"""The COCO id of "person": the class the constant detector finds."""


def constant_detector(image_size=(128, 128), max_detections=10, score_logit=6.0):
    """A tiny random RetinaNet whose every anchor is a "person" box scoring sigmoid(6).

    The box head is zeroed (its boxes are the anchors) and the class head's kernel
    too, with a bias of `score_logit` for "person" and -10 for every other class.

    Returns:
        A `keras_hub.models.RetinaNetObjectDetector` (91 COCO classes) with its
        preprocessor, at `image_size`.
    """
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16, 16, 16],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder, min_level=3, max_level=5, use_p5=False, image_shape=(None, None, 3)
    )
    converter = keras_hub.layers.RetinaNetImageConverter(
        image_size=image_size,
        scale=1.0 / 255.0,
        crop_to_aspect_ratio=False,
        pad_to_aspect_ratio=False,
        bounding_box_format="yxyx",
    )
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=91,
        bounding_box_format="yxyx",
        anchor_generator=keras_hub.layers.AnchorGenerator(
            "yxyx", min_level=3, max_level=5, num_scales=3, aspect_ratios=[0.5, 1.0, 2.0], anchor_size=4
        ),
        preprocessor=keras_hub.models.RetinaNetObjectDetectorPreprocessor(image_converter=converter),
        pre_logits_num_conv_layers=0,
        prediction_decoder=keras_hub.layers.NonMaxSuppression(
            bounding_box_format="yxyx",
            from_logits=True,
            iou_threshold=0.5,
            confidence_threshold=0.9,
            max_detections=max_detections,
        ),
    )
    box_layer = detector.box_head.prediction_layer
    box_layer.set_weights([np.zeros(w.shape, "float32") for w in box_layer.get_weights()])
    class_layer = detector.classification_head.prediction_layer
    kernel, bias = class_layer.get_weights()
    bias = np.full(bias.shape, -10.0, "float32").reshape(-1, 91)
    bias[:, PERSON] = score_logit
    class_layer.set_weights([np.zeros_like(kernel), bias.reshape(-1)])
    return detector


def anchors_xyxy(detector, image_size):
    """The detector's anchors at `image_size`, (N, 4) corners x0, y0, x1, y1 in pixels."""
    import keras

    images = np.zeros((1, *image_size, 3), "float32")
    yxyx = np.concatenate([keras.ops.convert_to_numpy(a) for a in detector.anchor_generator(images).values()])
    return yxyx[:, [1, 0, 3, 2]]
