"""mmdet's ``DetInferencer`` with this library's checkpoint loading: ``weights_only`` (no
environment variable can switch it off) and strict (a checkpoint that does not fit the config
is an error naming the keys, not random weights with a warning)."""
import warnings

from mmdet.apis import DetInferencer

from mmdet_ksdetr.utils.checkpoint_io import load_weights_strictly


class SafeDetInferencer(DetInferencer):
    """``DetInferencer(model=CONFIG, weights=CHECKPOINT, device=...)`` for the configs of this
    library (and any mmdet config). The model is built from the config, then the checkpoint's
    ``state_dict`` is loaded strictly through the safe loader; the class names come from the
    checkpoint's ``meta.dataset_meta`` when it has them, else from the config's test set."""

    def _init_model(self, cfg, weights, device='cpu'):
        with warnings.catch_warnings():
            # the parent warns that no checkpoint is loaded: we load it just below
            warnings.filterwarnings('ignore', message='Checkpoint is not loaded')
            model = super()._init_model(cfg, None, 'cpu')
        if weights is not None:
            ckpt = load_weights_strictly(model, weights)
            meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
            if 'dataset_meta' in meta:
                model.dataset_meta = {k.lower(): v for k, v in meta['dataset_meta'].items()}
        return model.to(device).eval()
