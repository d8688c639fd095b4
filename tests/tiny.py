"""A tiny conv DSVAE and training settings that the training tests share (16x16 frames)."""

TINY_MODEL = [
    "model.f_dim=4",
    "model.z_dim=3",
    "model.hidden_dim=16",
    "model.frames.channels=[8,8]",
    "model.frames.strides=[2,2]",
    "model.frames.feature_dim=32",
]
TINY_TRAIN = [
    "train.batch_size=16",
    "train.lr=0.003",
    "train.progress_bar=false",
    "train.log_every_n_steps=2",
]
