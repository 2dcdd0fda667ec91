"""Object detection: KITTI and COCO data, anchors, loss, post-processing and evaluation (EfficientDet)."""
