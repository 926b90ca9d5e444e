import gunpowder as gp
import numpy as np


class GammaAugment(gp.BatchFilter):
    """Randomly change the contrast curve of an intensity array: ``x -> x ** gamma``.

    FIB-SEM contrast varies between cells and preparations (chemical fixation vs high-pressure
    freezing) in a non-linear way that IntensityAugment's scale and shift cannot imitate. The
    array must be normalised to [0, 1] (place this node before any shift to [-1, 1]).

    Args:

        array (:class:`ArrayKey`):

            The intensity array to modify, float in [0, 1].

        gamma_min (``float``):

            Smallest gamma drawn (log-uniformly), e.g. 0.8.

        gamma_max (``float``):

            Largest gamma drawn, e.g. 1.25.

        p (``float``, optional):

            Probability of applying the augmentation. Default: 1.0.
    """

    def __init__(self, array: gp.ArrayKey, gamma_min: float, gamma_max: float, p: float = 1.0):
        if not 0 < gamma_min <= gamma_max:
            raise ValueError(f"need 0 < gamma_min <= gamma_max, got {gamma_min}, {gamma_max}")
        self.array = array
        self.gamma_min = gamma_min
        self.gamma_max = gamma_max
        self.p = p

    def setup(self):
        self.enable_autoskip()
        self.updates(self.array, self.spec[self.array])

    def skip_node(self, request):
        return np.random.random() > self.p

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[self.array] = request[self.array].copy()
        return deps

    def process(self, batch, request):
        array = batch[self.array]
        if array.data.dtype.kind != "f":
            raise ValueError(
                f"GammaAugment needs a float array in [0, 1], {self.array} is {array.data.dtype}"
            )
        gamma = np.exp(np.random.uniform(np.log(self.gamma_min), np.log(self.gamma_max)))
        array.data = np.clip(array.data, 0, 1) ** gamma
