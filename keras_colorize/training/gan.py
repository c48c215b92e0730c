"""Adversarial trainers: conditional GAN (pix2pix) and WGAN-GP, one step for every backend.

Each trainer is a `keras.Model` holding a generator (model-space L -> ab) and a
discriminator or critic (L and ab concatenated -> patch logits). Its
`train_step` is written once over `keras.ops`; gradients go through the seam in
`keras_colorize.training.gradients`. Both networks' optimizers live in one
`keras.optimizers.MultiOptimizer` (`trainer.optimizer`), so that every backend's
`fit()` (JAX's compiled, stateless step included) carries and saves both states.

References:
    Isola et al., "Image-to-Image Translation with Conditional Adversarial
    Networks", CVPR 2017.
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
    Vitoria et al., "ChromaGAN: Adversarial Picture Colorization with Semantic
    Class Distribution", WACV 2020.
"""

import copy
import re
import warnings

import keras
import numpy as np
from keras import ops
from keras.src.utils.tracking import no_automatic_dependency_tracking

from keras_colorize.color import model_outputs_to_rgb, rgb_to_model_inputs
from keras_colorize.errors import UserInputError
from keras_colorize.losses import get_reconstruction_loss
from keras_colorize.metrics._common import deserialize_metrics
from keras_colorize.models.registry import register
from keras_colorize.training import gradients
from keras_colorize.training.optimizers import Adam, get_optimizer

CLASS_TARGETS = ("labels", "teacher")

LOSS_SCALE_INITIAL = 2.0**15
"""The initial dynamic loss scale of float16 training (Keras's `LossScaleOptimizer` default)."""
LOSS_SCALE_GROWTH_STEPS = 2000
"""Finite steps in a row after which the dynamic loss scale doubles (Keras's default)."""


def default_optimizer():
    """Adam with learning rate 2e-4 and beta_1 = 0.5, the pix2pix setting."""
    return Adam(learning_rate=2e-4, beta_1=0.5)


def _get_optimizer(optimizer):
    if optimizer is None:
        return default_optimizer()
    return get_optimizer(optimizer)


def _split_outputs(outputs):
    """(ab, class logits or None) from a generator's output (tensor or dict)."""
    if isinstance(outputs, dict):
        if "ab" not in outputs:
            raise UserInputError(f"a generator returning a dict must have an 'ab' entry, got keys {sorted(outputs)}")
        return outputs["ab"], outputs.get("class_logits")
    return outputs, None


def _perceptual_arguments(lambda_perceptual, perceptual_network, perceptual_weights, kwargs):
    """The perceptual term's settings (and whether to read its weights file) for `_setup`."""
    return {
        "lambda_perceptual": lambda_perceptual,
        "perceptual_network": perceptual_network,
        "perceptual_weights": perceptual_weights,
        "load_weights": kwargs.pop("_load_perceptual_weights", True),
    }


def _renamed_argument(kwargs, old, new, value):
    """The value of argument `new`, taken from its deprecated name `old` in `kwargs` when given there."""
    if old not in kwargs:
        return value
    if value is not None:
        raise UserInputError(f"give {new}= only (its old name {old}= as well is ambiguous)")
    warnings.warn(f"the argument {old}= is deprecated; use {new}=", DeprecationWarning, stacklevel=3)
    return kwargs.pop(old)


def _has_class_branch(generator):
    """Whether a (functional) generator returns a dict with "class_logits"."""
    try:
        outputs = generator.output
    except (AttributeError, ValueError):
        return False
    return isinstance(outputs, dict) and "class_logits" in outputs


class AdversarialTrainer(keras.Model):
    """Shared machinery of `GANTrainer` and `WGANGPTrainer` (not registered).

    Subclasses define the `adversary` property (the discriminator or critic) and implement
    `adversarial_step(images, labels)`, which updates the networks and returns
    nothing; the metrics are updated there, outside any differentiated function.
    """

    def _setup(
        self,
        generator,
        adversary,
        lambda_adv,
        lambda_rec,
        reconstruction,
        lambda_class,
        class_target,
        teacher,
        image_size,
        perceptual,
    ):
        if class_target not in CLASS_TARGETS:
            raise UserInputError(f"class_target must be one of {', '.join(CLASS_TARGETS)}, got {class_target!r}")
        if class_target == "teacher" and teacher is None:
            raise UserInputError("class_target 'teacher' needs a teacher classifier")
        if generator is adversary:
            raise UserInputError("the generator and the discriminator must be different networks")
        self.generator = generator
        self.lambda_adv = float(lambda_adv)
        self.lambda_rec = float(lambda_rec)
        self.reconstruction = reconstruction
        self.lambda_class = float(lambda_class)
        self.class_target = class_target
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.reconstruction_loss = get_reconstruction_loss(reconstruction)
        self.uses_class_branch = self.lambda_class > 0 and _has_class_branch(generator)
        self.image_size = None if image_size is None else int(image_size)
        self._setup_perceptual(**perceptual)

    def _setup_perceptual(self, lambda_perceptual, perceptual_network, perceptual_weights, load_weights=True):
        """The frozen LPIPS network of the perceptual term (only when its weight is > 0).

        Its weights are read from `perceptual_weights` (or the weights cache) when the
        trainer is built, and from the checkpoint when a saved trainer loads.
        """
        self.lambda_perceptual = float(lambda_perceptual)
        self.perceptual_network = perceptual_network
        self.perceptual_weights = None if perceptual_weights is None else str(perceptual_weights)
        self.perceptual = None
        if self.lambda_perceptual <= 0:
            return
        from keras_colorize.metrics.lpips import LPIPSNetwork
        from keras_colorize.metrics.weights import lpips_weights_path

        self.perceptual = LPIPSNetwork(perceptual_network, name="perceptual")
        if load_weights:
            self.perceptual.load_weights_file(lpips_weights_path(perceptual_network, perceptual_weights))
        self.perceptual.trainable = False

    def _make_trackers(self, names):
        from keras_colorize.metrics import default_metrics

        if self.perceptual is not None:
            names = names + ["g_perceptual"]
        if self.uses_class_branch:
            names = names + ["g_class", "class_accuracy"]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self._quality_metrics = default_metrics()
        self.build()  # the networks are built; all state now exists

    # ------------------------------------------------------------------ Keras API
    @property
    def metrics(self):
        """The per-step logs (one `keras.metrics.Mean` each) and the sRGB validation metrics."""
        return list(self._trackers.values()) + list(self._quality_metrics)

    @property
    def generator_optimizer(self):
        """The generator's optimizer inside the `MultiOptimizer`."""
        return self._sub_optimizer("generator")

    @property
    def discriminator_optimizer(self):
        """The discriminator's (or critic's) optimizer inside the `MultiOptimizer`."""
        return self._sub_optimizer("discriminator")

    def _sub_optimizer(self, role):
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return None
        # MultiOptimizer lists the mapped optimizers first, then the default one.
        discriminator_optimizer, generator_optimizer = optimizer.optimizers
        return generator_optimizer if role == "generator" else discriminator_optimizer

    def build(self, input_shape=None):
        if not self.generator.built:
            self.generator.build((None, None, None, 1))
        self.built = True

    def call(self, images, training=False):
        """Colorize: sRGB in [0, 1], (N, H, W, 3) -> model-space ab in [-1, 1], (N, H, W, 2)."""
        l_norm, _ = rgb_to_model_inputs(images, "channels_last")
        ab, _ = _split_outputs(self.generator(l_norm, training=training))
        return ab

    @no_automatic_dependency_tracking  # as keras.Model.compile: metrics added after the networks are built
    def compile(self, generator_optimizer=None, discriminator_optimizer=None, metrics=None, **kwargs):
        """Configure training with one optimizer per network.

        Both are held by one `keras.optimizers.MultiOptimizer` (`self.optimizer`)
        that routes the adversary's variables by path to its optimizer (the
        generator's and the adversary's variable paths must differ), so `fit()`
        carries and checkpoints both states on every backend.

        Args:
            generator_optimizer: keras.optimizers.Optimizer, str or None. Defaults
                to Adam(2e-4, beta_1=0.5).
            discriminator_optimizer: keras.optimizers.Optimizer, str or None. The
                discriminator's (critic's). Defaults to Adam(2e-4, beta_1=0.5).
            metrics: list of metrics or None. sRGB metrics (truth, prediction in
                [0, 1]) reported in validation besides `default_metrics()`, e.g.
                `keras_colorize.metrics.LPIPS()`. Defaults to None.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`,
                `steps_per_execution`); `optimizer` and `loss` are not accepted.
        """
        from keras_colorize.metrics import default_metrics

        for key in ("optimizer", "loss"):
            if kwargs.get(key) is not None:
                raise UserInputError(
                    f"{type(self).__name__}.compile takes generator_optimizer and discriminator_optimizer, not {key}"
                )
            kwargs.pop(key, None)
        generator_optimizer = _get_optimizer(generator_optimizer)
        discriminator_optimizer = _get_optimizer(discriminator_optimizer)
        if generator_optimizer is discriminator_optimizer:
            raise UserInputError("the generator and the discriminator need two distinct optimizer objects")
        routes = keras.optimizers.OptimizerMap(
            default_optimizer=generator_optimizer,
            optimizer_map={re.escape(v.path): discriminator_optimizer for v in self.adversary.trainable_variables},
        )
        for variable in self.generator.trainable_variables:
            if routes(variable) is not generator_optimizer:
                raise UserInputError(
                    f"the generator and the discriminator both have a variable {variable.path!r}; "
                    f"give their layers distinct names"
                )
        metrics = list(metrics or [])
        self._quality_metrics = default_metrics() + metrics
        self._optimizer_config = {
            "generator_optimizer": keras.saving.serialize_keras_object(generator_optimizer),
            "discriminator_optimizer": keras.saving.serialize_keras_object(discriminator_optimizer),
            "metrics": [keras.saving.serialize_keras_object(metric) for metric in metrics],
        }
        # A LossScaleOptimizer cannot hold a MultiOptimizer's networks apart: loss
        # scaling of float16 networks is done per network here (`optimizer_update`).
        kwargs["auto_scale_loss"] = False
        super().compile(optimizer=keras.optimizers.MultiOptimizer(routes), **kwargs)
        self.optimizer.build(self.trainable_variables)
        self._add_loss_scales()

    def _add_loss_scales(self):
        """With float16 networks, a dynamic loss scale and a count of finite steps per
        network, kept with the optimizer's state (carried by every backend's `fit()`
        and saved in checkpoints)."""
        from keras_colorize.training.precision import computes_in_float16

        if not computes_in_float16(self.generator, self.adversary):
            return
        for role in ("generator", "discriminator"):
            self.optimizer.add_variable(
                (),
                initializer=keras.initializers.Constant(LOSS_SCALE_INITIAL),
                dtype="float32",
                aggregation="only_first_replica",
                name=f"{role}_loss_scale",
            )
            self.optimizer.add_variable(
                (), initializer="zeros", dtype="float32", aggregation="only_first_replica", name=f"{role}_good_steps"
            )

    def _loss_scale_variables(self, role):
        """(loss scale, finite steps in a row) of a float16 network, or None."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return None
        found = {v.name: v for v in optimizer.variables if v.name.startswith(role)}
        if f"{role}_loss_scale" not in found:
            return None
        return found[f"{role}_loss_scale"], found[f"{role}_good_steps"]

    def loss_scale(self, role="generator"):
        """The dynamic loss scale of a network trained in float16, or None.

        Args:
            role: "generator" or "discriminator" (the critic). Defaults to "generator".

        Returns:
            A scalar `keras.Variable`, or None when the network is not float16.
        """
        scales = self._loss_scale_variables(role)
        return None if scales is None else scales[0]

    def optimizer_update(self, role, objective, variables):
        """Differentiate an objective and update a network with its optimizer.

        The loss is divided by the replicas that sum their gradients
        (`gradients.replicas_in_sync`, TensorFlow `tf.distribute`) and, for a float16
        network, multiplied by its dynamic loss scale; the gradients are unscaled
        and the update is skipped (the scale halved) when one is not finite; after
        `LOSS_SCALE_GROWTH_STEPS` finite steps in a row the scale doubles.

        Args:
            role: "generator" or "discriminator" (the critic).
            objective: callable returning `(loss, aux)` (see `gradients.value_and_gradients`).
            variables: list of keras.Variable. The network's trainable variables.

        Returns:
            `(loss, aux)`: the objective's unscaled loss and its aux.
        """
        (_, (loss, aux)), grads = gradients.value_and_gradients(self._scaled(role, objective), variables)
        self._apply_scaled_gradients(role, grads, variables)
        return loss, aux

    def _scaled(self, role, objective):
        """`objective` (returning `(loss, aux)`) as the loss that is differentiated:
        divided by the replicas in sync and multiplied by the role's loss scale; the
        unscaled `(loss, aux)` becomes its aux."""
        scales = self._loss_scale_variables(role)
        replicas = gradients.replicas_in_sync()

        def scaled_objective(*args):
            loss, aux = objective(*args)
            value = ops.cast(loss, "float32")
            if replicas > 1:
                value = value / replicas
            if scales is not None:
                value = value * scales[0]
            return value, (loss, aux)

        return scaled_objective

    def _apply_scaled_gradients(self, role, grads, variables):
        """Apply gradients of a `_scaled` objective with the role's optimizer (see `optimizer_update`)."""
        optimizer = self.generator_optimizer if role == "generator" else self.discriminator_optimizer
        scales = self._loss_scale_variables(role)
        if scales is None:
            optimizer.apply(grads, variables)
            return
        scale_variable, good_steps_variable = scales
        scale = ops.convert_to_tensor(scale_variable)
        good_steps = ops.convert_to_tensor(good_steps_variable)
        grads = [ops.divide(ops.cast(g, "float32"), scale) for g in grads]
        finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in grads]))
        finite = gradients.apply_if(finite, optimizer, grads, variables)
        grow = ops.logical_and(finite, ops.greater_equal(good_steps + 1.0, LOSS_SCALE_GROWTH_STEPS))
        new_scale = ops.where(finite, ops.where(grow, scale * 2.0, scale), scale * 0.5)
        new_good_steps = ops.where(ops.logical_and(finite, ops.logical_not(grow)), good_steps + 1.0, 0.0)
        scale_variable.assign(new_scale)
        good_steps_variable.assign(new_good_steps)

    def get_compile_config(self):
        if not getattr(self, "compiled", False) or not hasattr(self, "_optimizer_config"):
            return None
        return dict(self._optimizer_config)

    def compile_from_config(self, config):
        """Restore `compile()` (both optimizers) when a `.keras` file loads."""
        self.compile(
            generator_optimizer=keras.saving.deserialize_keras_object(config["generator_optimizer"]),
            discriminator_optimizer=keras.saving.deserialize_keras_object(config["discriminator_optimizer"]),
            metrics=deserialize_metrics(config.get("metrics", [])),
        )

    def train_step(self, *args):
        """One adversarial step on a batch: sRGB in [0, 1], or (sRGB, int labels).

        On JAX `fit()` calls `train_step(state, data)` and gets `(logs, state)`
        back; on TensorFlow and PyTorch `train_step(data)` returns the logs.
        """
        state, data = args if len(args) == 2 else (None, args[0])

        def step():
            images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
            images = ops.convert_to_tensor(images, "float32")
            self.adversarial_step(images, labels)
            self.optimizer.iterations.assign_add(1)
            return {name: tracker.result() for name, tracker in self._trackers.items()}

        return gradients.run_stateful_step(self, state, step)

    def test_step(self, *args):
        """Validation on a batch: the generator in inference mode, no adversary.

        Logs `g_rec` (the reconstruction term, the value run directories monitor
        for `best.keras`), the sRGB metrics of `default_metrics()` and, with an
        active class branch and integer labels, `class_accuracy`.
        """
        state, data = args if len(args) == 2 else (None, args[0])

        def step():
            images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
            images = ops.convert_to_tensor(images, "float32")
            l_norm, ab_real = rgb_to_model_inputs(images, "channels_last")
            ab_fake, logits = self.generator_outputs(l_norm, training=False)
            logs = {"g_rec": self.reconstruction_term(ab_real, ab_fake)}
            if self.uses_class_branch and self.class_target == "labels" and labels is not None:
                from keras_colorize.losses.classification import class_accuracy

                logs["class_accuracy"] = class_accuracy(labels, logits)
            for name, value in logs.items():
                self._trackers[name].update_state(value)
            rgb = model_outputs_to_rgb(l_norm, ab_fake, "channels_last")
            for metric in self._quality_metrics:
                metric.update_state(images, rgb)
            results = {name: self._trackers[name].result() for name in logs}
            results.update({metric.name: metric.result() for metric in self._quality_metrics})
            return results

        return gradients.run_stateful_step(self, state, step)

    # ------------------------------------------------------------- shared pieces
    def generator_outputs(self, l_norm, training=True):
        """Run the generator: model-space L -> (ab, class logits or None)."""
        return _split_outputs(self.generator(l_norm, training=training))

    def generate(self, l_norm, training=True):
        """Deprecated name of `generator_outputs` (`generate` samples photos in the InstructPix2Pix pipeline)."""
        warnings.warn("AdversarialTrainer.generate is deprecated; use generator_outputs", DeprecationWarning, stacklevel=2)
        return self.generator_outputs(l_norm, training=training)

    def generator_forward(self, l_norm):
        """The generator's one forward pass of a training batch, kept for its update.

        Args:
            l_norm: model-space L in [-1, 1], (N, H, W, 1).

        Returns:
            `(outputs, pullback)` (`gradients.forward_with_pullback`): outputs are
            `(ab,)`, or `(ab, class logits)` with an active class branch.
        """

        def forward():
            ab, logits = self.generator_outputs(l_norm, training=True)
            return (ab, logits) if self.uses_class_branch else (ab,)

        return gradients.forward_with_pullback(forward, self.generator.trainable_variables)

    def class_targets(self, l_norm, labels):
        """Integer labels or teacher probabilities for the class term, per `class_target`."""
        if self.class_target == "teacher":
            gray = model_outputs_to_rgb(l_norm, ops.zeros_like(ops.concatenate([l_norm, l_norm], axis=-1)), "channels_last")
            return ops.stop_gradient(self.teacher(gray, training=False))
        if labels is None:
            raise UserInputError(
                f"{type(self).__name__} with lambda_class > 0 and class_target 'labels' needs integer class labels: "
                f"fit(images, labels)"
            )
        return labels

    def class_terms(self, targets, logits):
        """(class loss, accuracy) of class logits against labels or teacher probabilities."""
        from keras_colorize.losses.classification import class_accuracy, class_cross_entropy, class_kl_divergence

        if self.class_target == "teacher":
            loss = class_kl_divergence(targets, logits)
            labels = ops.argmax(targets, axis=-1)
        else:
            loss = class_cross_entropy(targets, logits)
            labels = targets
        return loss, class_accuracy(labels, logits)

    def reconstruction_term(self, ab_real, ab_fake):
        """The reconstruction loss of a batch, as a mean over the replica's share of it.

        A Keras loss object divides its value by the replicas in sync under a
        TensorFlow distribution strategy; that is undone here, since
        `optimizer_update` divides the whole objective.

        Args:
            ab_real: model-space ab in [-1, 1], (N, H, W, 2).
            ab_fake: generated model-space ab, (N, H, W, 2).

        Returns:
            Scalar.
        """
        value = self.reconstruction_loss(ab_real, ab_fake)
        replicas = gradients.replicas_in_sync()
        if replicas > 1 and isinstance(self.reconstruction_loss, keras.losses.Loss):
            value = value * replicas
        return value

    def generator_objective(self, l_norm, ab_real, targets, adversarial_loss):
        """The generator's total loss and its terms, as a function of its outputs.

        Args:
            l_norm: model-space L in [-1, 1], (N, H, W, 1).
            ab_real: model-space ab in [-1, 1], (N, H, W, 2).
            targets: class targets or None.
            adversarial_loss: callable. Adversary scores of the fakes -> loss.

        Returns:
            A callable `(ab_fake, [class logits]) -> (total, terms)` for
            `gradients.value_and_tensor_gradients`; the adversary scores the fakes
            in training mode (as it was just updated, pix2pix's order).
        """

        def objective(ab_fake, logits=None):
            scores = self.adversary(ops.concatenate([l_norm, ab_fake], axis=-1), training=True)
            g_adv = adversarial_loss(scores)
            g_rec = self.reconstruction_term(ab_real, ab_fake)
            total = self.lambda_adv * g_adv + self.lambda_rec * g_rec
            terms = {"g_adv": g_adv, "g_rec": g_rec}
            if self.perceptual is not None:
                real_rgb = model_outputs_to_rgb(l_norm, ab_real, "channels_last")
                fake_rgb = model_outputs_to_rgb(l_norm, ab_fake, "channels_last")
                g_perceptual = ops.mean(self.perceptual([real_rgb, fake_rgb], training=False))
                total = total + self.lambda_perceptual * g_perceptual
                terms["g_perceptual"] = g_perceptual
            if self.uses_class_branch:
                g_class, accuracy = self.class_terms(targets, logits)
                total = total + self.lambda_class * g_class
                terms.update(g_class=g_class, class_accuracy=accuracy)
            return total, terms

        return objective

    def update_generator(self, forward, l_norm, ab_real, targets, adversarial_loss):
        """One generator update through the batch's forward pass; returns its total loss and terms.

        Args:
            forward: `(outputs, pullback)` of `generator_forward` for this batch.
            l_norm: model-space L in [-1, 1], (N, H, W, 1).
            ab_real: model-space ab in [-1, 1], (N, H, W, 2).
            targets: class targets or None.
            adversarial_loss: callable. Adversary scores of the fakes -> loss.
        """
        outputs, pullback = forward
        objective = self._scaled("generator", self.generator_objective(l_norm, ab_real, targets, adversarial_loss))
        (_, (total, terms)), cotangents = gradients.value_and_tensor_gradients(objective, outputs)
        variables = self.generator.trainable_variables
        self._apply_scaled_gradients("generator", pullback(cotangents), variables)
        return dict(terms, g_total=total)

    def predict_rgb(self, images, batch_size=32):
        """Colorize a batch at its own size with the generator (inference mode).

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3), at a size the
                generator accepts.
            batch_size: int. Defaults to 32.

        Returns:
            NumPy float32 sRGB in [0, 1], shape (N, H, W, 3).
        """
        from keras_colorize.colorizer import recombine

        images = np.asarray(images, "float32")
        return recombine(images, self.predict(images, batch_size=batch_size, verbose=0))

    def colorizer(self, image_size=None):
        """The trained generator as a `keras_colorize.Colorizer` (for colorize/evaluate).

        Args:
            image_size: int, (int, int) or None. The size the generator sees at
                inference. Defaults to None: the trainer's `image_size`, else the
                generator's fixed input size, else 256.
        """
        from keras_colorize.colorizer import Colorizer

        size = image_size or self.image_size or getattr(self.generator, "image_size", None) or 256
        return Colorizer(self.generator, image_size=size)

    def _base_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "lambda_adv": self.lambda_adv,
            "lambda_rec": self.lambda_rec,
            "reconstruction": self.reconstruction
            if isinstance(self.reconstruction, str)
            else keras.saving.serialize_keras_object(self.reconstruction),
            "lambda_class": self.lambda_class,
            "class_target": self.class_target,
            "teacher": None if self.teacher is None else keras.saving.serialize_keras_object(self.teacher),
            "image_size": self.image_size,
            "lambda_perceptual": self.lambda_perceptual,
            "perceptual_network": self.perceptual_network,
            "perceptual_weights": self.perceptual_weights,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing may consume nested configs
        if "critic" in config:  # checkpoints saved before the WGAN-GP critic took the common name
            config["discriminator"] = config.pop("critic")
        for key in ("generator", "discriminator", "teacher", "reconstruction"):
            if key == "reconstruction" and not isinstance(config.get(key), dict):
                continue
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        # The LPIPS weights of the perceptual term come with the checkpoint's weights.
        return cls(**config, _load_perceptual_weights=False)


@register
class GANTrainer(AdversarialTrainer):
    """Conditional GAN (pix2pix) with reconstruction and optional class terms.

    On every batch the discriminator takes one step, then the generator. The
    discriminator sees model-space L concatenated with the true ab and with the
    generated ab; its loss is the mean of the real and fake binary cross-entropies,
    with one-sided label smoothing (real target `real_label`). The generator
    minimises `lambda_adv * BCE(D(L, G(L)) -> 1) + lambda_rec * reconstruction(ab,
    G(L)) + lambda_perceptual * LPIPS + lambda_class * class loss`. The class term needs a generator returning
    `{"ab", "class_logits"}`: cross-entropy with integer labels (`fit(images,
    labels)`), or the KL divergence to a frozen `teacher` classifier's predicted
    distribution on the gray image (no labels needed).

    The order of a step is pix2pix's: the generator runs once, in training mode
    (one dropout mask, one BatchNorm update); the discriminator scores the fake
    (its gradient stopped), then the real pairs, and takes its step; the generator
    loss is computed with the updated discriminator (in training mode) on the same
    fake, and its gradient flows back through that one forward pass
    (`gradients.forward_with_pullback`).

    Logs: `loss` (discriminator loss + generator total loss, the value that
    `TerminateOnNonFinite` watches), `d_loss`, `g_adv`, `g_rec`, `g_perceptual`
    (with `lambda_perceptual` > 0), and with an active class branch `g_class` and
    `class_accuracy`. Validation (`evaluate`,
    `fit(validation_data=...)`) logs `g_rec`, the sRGB metrics and
    `class_accuracy` (see `test_step`).

    Args:
        generator: keras.Model. Model-space L in [-1, 1], (N, H, W, 1) -> ab in
            [-1, 1], (N, H, W, 2), or a dict {"ab", "class_logits" (N, classes)}.
        discriminator: keras.Model. L and ab concatenated, (N, H, W, 3) -> logits
            (N, h, w, 1), e.g. `PatchGANDiscriminator`. Its variable paths
            must differ from the generator's (true for the zoo models).
        lambda_adv: float. Weight of the adversarial term. Defaults to 1.0.
        lambda_rec: float. Weight of the reconstruction term. Defaults to 100.0.
        reconstruction: str or keras loss. "l1", "l2", "huber" or a Keras loss on
            model-space ab. Defaults to "l1".
        lambda_class: float. Weight of the class term; used only when the
            generator has a class branch. Defaults to 0.0.
        real_label: float. Target of real pairs for the discriminator (one-sided
            label smoothing). Defaults to 0.9.
        class_target: "labels" or "teacher". Defaults to "labels".
        teacher: keras.Model or None. Frozen classifier: the gray image, sRGB in
            [0, 1], (N, H, W, 3) -> class probabilities (N, classes). Defaults to None.
        image_size: int or None. The square size the generator is trained at;
            `colorizer()` uses it. Defaults to None.
        lambda_perceptual: float. Weight of the perceptual term: the mean LPIPS
            distance between the true and the generated image (sRGB, the image's
            own L* with true or generated ab), through a frozen LPIPS network.
            Defaults to 0.0 (off).
        perceptual_network: "alex" or "vgg". The LPIPS network. Defaults to "alex".
        perceptual_weights: str, Path or None. Its converted weights (`.npz`);
            None reads them from the weights cache (`keras-colorize weights lpips`).
            Saved checkpoints hold them. Defaults to None.

    Inputs of `fit`: sRGB in [0, 1], float32, (N, H, W, 3), optionally with int
    labels (N,).

    Examples:
        >>> from keras_colorize.models import PatchGANDiscriminator, UNetV1
        >>> from keras_colorize.training import GANTrainer
        >>> trainer = GANTrainer(
        ...     UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)),
        ...     PatchGANDiscriminator(filters=(8, 16, 16, 16)),
        ... )
        >>> trainer.compile()  # Adam(2e-4, beta_1=0.5) for both networks
    """

    def __init__(
        self,
        generator,
        discriminator,
        lambda_adv=1.0,
        lambda_rec=100.0,
        reconstruction="l1",
        lambda_class=0.0,
        real_label=0.9,
        class_target="labels",
        teacher=None,
        image_size=None,
        lambda_perceptual=0.0,
        perceptual_network="alex",
        perceptual_weights=None,
        **kwargs,
    ):
        perceptual = _perceptual_arguments(lambda_perceptual, perceptual_network, perceptual_weights, kwargs)
        kwargs.setdefault("name", "gan_trainer")
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.real_label = float(real_label)
        self._setup(
            generator,
            discriminator,
            lambda_adv,
            lambda_rec,
            reconstruction,
            lambda_class,
            class_target,
            teacher,
            image_size,
            perceptual,
        )
        self._make_trackers(["loss", "d_loss", "g_adv", "g_rec"])

    @property
    def adversary(self):
        """The discriminator."""
        return self.discriminator

    def adversarial_step(self, images, labels):
        """One discriminator step, then one generator step, on a batch; updates the metrics.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3).
            labels: int class labels, shape (N,), or None without a class term.
        """
        from keras_colorize.losses.adversarial import discriminator_bce_loss, generator_bce_loss

        l_norm, ab_real = rgb_to_model_inputs(images, "channels_last")
        targets = self.class_targets(l_norm, labels) if self.uses_class_branch else None
        forward = self.generator_forward(l_norm)
        real_pairs = ops.concatenate([l_norm, ab_real], axis=-1)
        fake_pairs = ops.concatenate([l_norm, ops.stop_gradient(forward[0][0])], axis=-1)

        def discriminator_objective():
            fake_logits = self.discriminator(fake_pairs, training=True)
            real_logits = self.discriminator(real_pairs, training=True)
            return discriminator_bce_loss(real_logits, fake_logits, real_label=self.real_label), None

        d_loss, _ = self.optimizer_update(
            "discriminator", discriminator_objective, self.discriminator.trainable_variables
        )

        terms = self.update_generator(forward, l_norm, ab_real, targets, generator_bce_loss)
        self._trackers["loss"].update_state(d_loss + terms["g_total"])
        self._trackers["d_loss"].update_state(d_loss)
        for name in ("g_adv", "g_rec", "g_perceptual", "g_class", "class_accuracy"):
            if name in self._trackers:
                self._trackers[name].update_state(terms[name])

    def get_config(self):
        config = self._base_config()
        config.update(
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            real_label=self.real_label,
        )
        return config


@register
class WGANGPTrainer(AdversarialTrainer):
    """Wasserstein GAN with gradient penalty, reconstruction and optional class terms.

    The critic takes a step on every batch: `mean(C(fake)) - mean(C(real))` plus
    `gp_weight` times the gradient penalty `mean((||grad_ab C(L, ab_hat)|| - 1)^2)`
    at random interpolates `ab_hat = alpha * ab_real + (1 - alpha) * ab_fake`,
    alpha ~ U(0, 1) per sample (a `keras.random.SeedGenerator` owned by the
    trainer). With `clip_value` the critic's weights are clipped to
    `[-clip_value, clip_value]` after each step (the original WGAN; set
    `gp_weight=0` for clipping alone). The generator takes a step on every
    `n_critic`-th batch (batches n_critic, 2 n_critic, ... counted by
    `trainer.optimizer.iterations`), minimising `-lambda_adv * mean(C(L, G(L))) +
    lambda_rec * reconstruction + lambda_perceptual * LPIPS + lambda_class * class
    loss`. The generator runs once per batch, in training mode: the critic scores
    that output with its gradient stopped and, on a generator batch, the
    generator's loss (with the critic just updated) is pulled back through the
    same forward pass. The choice is a
    conditional inside the compiled step (`gradients.cond_update`); on JAX, `fit()`
    instead compiles two steps and picks one per batch
    (`gradients.periodic_train_function`). Either way the generator optimizer's
    iteration count, its learning-rate schedule and the generator's weights advance
    only on generator steps.

    Logs: `loss` (critic total loss, plus the generator's total loss on generator
    batches), `critic_loss` (Wasserstein part), `gp`, and averaged over generator
    batches only: `g_adv`, `g_rec`, `g_perceptual` (with `lambda_perceptual` > 0),
    and with an active class branch `g_class` and `class_accuracy`.

    The discriminator is WGAN's critic (unbounded scores, not probabilities); the
    toolkit calls it the discriminator in every trainer, recipe and optimizer name
    (`critic=` and `trainer.critic` are its old names, deprecated).

    Args:
        generator: keras.Model. See `GANTrainer`.
        discriminator: keras.Model. The critic: L and ab concatenated, (N, H, W, 3)
            -> scores (N, h, w, 1), without BatchNorm (e.g.
            `PatchGANDiscriminator(normalization=None)`).
        lambda_adv: float. Weight of the adversarial term. Defaults to 0.1.
        lambda_rec: float. Weight of the reconstruction term. Defaults to 1.0.
        reconstruction: str or keras loss. Defaults to "l2".
        lambda_class: float. Weight of the class term; used only when the
            generator has a class branch. Defaults to 0.003.
        gp_weight: float. Weight of the gradient penalty. Defaults to 10.0.
        n_critic: int. Critic steps per generator step. Defaults to 5.
        clip_value: float or None. Clip the critic's weights after each step.
            Defaults to None.
        class_target: "labels" or "teacher". Defaults to "labels".
        teacher: keras.Model or None. See `GANTrainer`. Defaults to None.
        seed: int or None. Seed of the interpolation weights. Defaults to None.
        image_size: int or None. See `GANTrainer`. Defaults to None.
        lambda_perceptual: float. See `GANTrainer`. Defaults to 0.0.
        perceptual_network: str. See `GANTrainer`. Defaults to "alex".
        perceptual_weights: str, Path or None. See `GANTrainer`. Defaults to None.

    Examples:
        >>> from keras_colorize.models import PatchGANDiscriminator, UNetV1
        >>> from keras_colorize.training import WGANGPTrainer
        >>> trainer = WGANGPTrainer(
        ...     UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)),
        ...     PatchGANDiscriminator(filters=(8, 16, 16, 16), normalization=None),
        ... )
        >>> import keras
        >>> trainer.compile(keras.optimizers.Adam(2e-5, beta_1=0.5), keras.optimizers.Adam(2e-5, beta_1=0.5))
    """

    def __init__(
        self,
        generator,
        discriminator=None,
        lambda_adv=0.1,
        lambda_rec=1.0,
        reconstruction="l2",
        lambda_class=0.003,
        gp_weight=10.0,
        n_critic=5,
        clip_value=None,
        class_target="labels",
        teacher=None,
        seed=None,
        image_size=None,
        lambda_perceptual=0.0,
        perceptual_network="alex",
        perceptual_weights=None,
        **kwargs,
    ):
        perceptual = _perceptual_arguments(lambda_perceptual, perceptual_network, perceptual_weights, kwargs)
        discriminator = _renamed_argument(kwargs, "critic", "discriminator", discriminator)
        if discriminator is None:
            raise UserInputError("WGANGPTrainer needs a discriminator (the critic)")
        kwargs.setdefault("name", "wgan_gp_trainer")
        super().__init__(**kwargs)
        if int(n_critic) < 1:
            raise UserInputError(f"n_critic must be at least 1, got {n_critic}")
        if clip_value is not None and float(clip_value) <= 0:
            raise UserInputError(f"clip_value must be positive or null, got {clip_value}")
        self.discriminator = discriminator
        self.gp_weight = float(gp_weight)
        self.n_critic = int(n_critic)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="interpolation_seed")
        self.periodic_turn = None  # set while tracing one of the two JAX steps (gradients.periodic_train_function)
        self._setup(
            generator,
            discriminator,
            lambda_adv,
            lambda_rec,
            reconstruction,
            lambda_class,
            class_target,
            teacher,
            image_size,
            perceptual,
        )
        self._make_trackers(["loss", "critic_loss", "gp", "g_adv", "g_rec"])

    def gradient_penalty_for(self, real_ab, fake_ab, l_norm, alpha):
        """The gradient penalty at interpolates of real and generated ab.

        Differentiable with respect to the critic's weights (second order).

        Args:
            real_ab: model-space ab in [-1, 1], (N, H, W, 2).
            fake_ab: generated model-space ab, (N, H, W, 2).
            l_norm: model-space L in [-1, 1], (N, H, W, 1), the condition.
            alpha: interpolation weights in [0, 1], (N, 1, 1, 1).

        Returns:
            Scalar: mean over samples of (||d C(L, ab_hat) / d ab_hat||_2 - 1)^2.
        """
        from keras_colorize.losses.adversarial import gradient_penalty, interpolate

        interpolates = interpolate(real_ab, fake_ab, alpha)

        def critic_of_ab(ab):
            return self.discriminator(ops.concatenate([l_norm, ab], axis=-1), training=True)

        return gradient_penalty(gradients.input_gradients(critic_of_ab, interpolates))

    @property
    def adversary(self):
        """The discriminator (the critic)."""
        return self.discriminator

    @property
    def critic(self):
        """Deprecated name of `discriminator`."""
        warnings.warn("WGANGPTrainer.critic is deprecated; use .discriminator", DeprecationWarning, stacklevel=2)
        return self.discriminator

    def adversarial_step(self, images, labels):
        """One critic step on a batch and, on every `n_critic`-th batch, one generator step.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3).
            labels: int class labels, shape (N,), or None without a class term.
        """
        from keras_colorize.losses.adversarial import wasserstein_critic_loss, wasserstein_generator_loss

        l_norm, ab_real = rgb_to_model_inputs(images, "channels_last")
        targets = self.class_targets(l_norm, labels) if self.uses_class_branch else None
        turn = self._generator_turn()
        if turn is False:  # a critic-only batch, known here: nothing to differentiate later
            forward = None
            ab_fake = ops.stop_gradient(self.generator_outputs(l_norm, training=True)[0])
        else:
            forward = self.generator_forward(l_norm)
            ab_fake = ops.stop_gradient(forward[0][0])
        alpha = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator)

        def critic_objective():
            real_scores = self.discriminator(ops.concatenate([l_norm, ab_real], axis=-1), training=True)
            fake_scores = self.discriminator(ops.concatenate([l_norm, ab_fake], axis=-1), training=True)
            critic_loss = wasserstein_critic_loss(real_scores, fake_scores)
            total = critic_loss
            gp = ops.zeros((), "float32")
            if self.gp_weight:
                gp = self.gradient_penalty_for(ab_real, ab_fake, l_norm, alpha)
                total = total + self.gp_weight * gp
            return total, (critic_loss, gp)

        variables = self.discriminator.trainable_variables
        critic_total, (critic_loss, gp) = self.optimizer_update("discriminator", critic_objective, variables)
        if self.clip_value is not None:
            for variable in variables:
                variable.assign(ops.clip(variable, -self.clip_value, self.clip_value))

        names = ["g_total", "g_adv", "g_rec"] + (["g_perceptual"] if self.perceptual is not None else [])
        names += ["g_class", "class_accuracy"] if self.uses_class_branch else []
        if turn is True:  # a generator step on this batch: no condition
            terms = self.update_generator(forward, l_norm, ab_real, targets, wasserstein_generator_loss)
            terms = {name: ops.cast(terms[name], "float32") for name in names}
            is_generator_step = ops.ones((), "bool")
        elif turn is False:
            terms = {name: ops.zeros((), "float32") for name in names}
            is_generator_step = ops.zeros((), "bool")
        else:
            if gradients.replicas_in_sync() > 1:
                raise UserInputError(
                    "WGANGPTrainer with n_critic > 1 cannot train under a TensorFlow distribution strategy "
                    "(a synchronised generator update cannot be conditional); use n_critic: 1, "
                    "the JAX backend, or train.distribution: null"
                )
            batch = self.optimizer.iterations + 1
            is_generator_step = ops.equal(batch % self.n_critic, 0)
            terms = gradients.cond_update(
                is_generator_step,
                lambda: self.update_generator(forward, l_norm, ab_real, targets, wasserstein_generator_loss),
                names,
            )
        weight = ops.cast(is_generator_step, "float32")
        self._trackers["loss"].update_state(critic_total + terms["g_total"])
        self._trackers["critic_loss"].update_state(critic_loss)
        self._trackers["gp"].update_state(gp)
        for name in names[1:]:
            self._trackers[name].update_state(terms[name], sample_weight=weight)

    def _generator_turn(self):
        """Whether this batch takes a generator step, when known outside the compiled step.

        True or False: `n_critic` 1, the two steps JAX compiles
        (`periodic_turn`), or an eager PyTorch step (the batch count is read on
        the host); None: decided inside the compiled step (TensorFlow).
        """
        if self.n_critic == 1:
            return True
        if self.periodic_turn is not None:
            return self.periodic_turn
        if keras.backend.backend() == "torch":
            import torch

            if not torch.compiler.is_compiling():
                return (int(self.optimizer.iterations) + 1) % self.n_critic == 0
        return None

    def make_train_function(self, force=False):
        """Keras's train function; on JAX with `n_critic > 1`, two compiled steps chosen per batch.

        See `gradients.periodic_train_function`: the generator update is not a
        `lax.cond` branch, which XLA:CPU computes slowly.
        """
        if self.train_function is not None and not force:
            return
        periodic = gradients.periodic_train_function(self, self.n_critic) if self.n_critic > 1 else None
        if periodic is None:
            super().make_train_function(force=force)
        else:
            self.train_function = periodic

    def get_config(self):
        config = self._base_config()
        config.update(
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            gp_weight=self.gp_weight,
            n_critic=self.n_critic,
            clip_value=self.clip_value,
            seed=self.seed,
        )
        return config
