"""The backend seam of the adversarial trainers: gradients and state handling.

Keras abstracts layers, ops, optimizers and metrics over TensorFlow, JAX and
PyTorch, but not the computation of gradients nor how a training step carries
its state. This module is the one place where the trainers' code differs per
backend; a `train_step` written over `keras.ops` calls these functions:

- `value_and_gradients(fn, variables)`: gradients of a scalar loss with respect
  to Keras variables (TensorFlow: `GradientTape`; PyTorch: `torch.autograd.grad`;
  JAX: `jax.value_and_grad` of the function made stateless with
  `keras.StatelessScope`). Variable updates made inside `fn` (BatchNorm moving
  statistics, seed generators) are kept on every backend.
- `input_gradients(fn, x)`: the gradient of `sum(fn(x))` with respect to a
  tensor `x`, itself differentiable (second-order gradients, as the WGAN-GP
  gradient penalty needs).
- `forward_with_pullback(fn, variables)`: runs a network once and returns its
  outputs with a pullback that maps the gradients of a later loss with respect
  to those outputs to gradients with respect to the variables (TensorFlow: the
  tape of the forward; PyTorch: its autograd graph; JAX: `jax.vjp`). The
  adversarial trainers run the generator once per batch with it: the adversary's
  step takes the outputs with the gradient stopped, the generator's step pulls
  its loss back through the same forward.
- `value_and_tensor_gradients(fn, tensors)`: a scalar loss of some tensors and
  its (first-order) gradients with respect to them.
- `run_stateful_step(model, state, step_fn)`: runs a step that reads and assigns
  variables; on JAX it turns the stateless `(state, data)` call of `fit()` into
  such a step and returns the new state.
- `cond_update(pred, fn, output_names)`: runs `fn` (which may update variables)
  only when `pred` holds, inside one compiled step.
- `replicas_in_sync()`: how many replicas' gradients an optimizer update sums
  (TensorFlow `tf.distribute`), so that a replica's loss can be divided by it.
- `apply_if(pred, optimizer, grads, variables)`: an optimizer update that happens
  only when `pred` holds on every replica (the skip of dynamic loss scaling).
- `periodic_train_function(model, period)`: on JAX, a train function that picks on
  the host between two compiled steps, one of which runs every `period`-th batch
  (XLA:CPU runs convolutions inside `lax.cond` tens of times slower, so
  `cond_update` there costs more than the update itself).

Examples:
    >>> import keras
    >>> from keras_colorize.training.gradients import value_and_gradients
    >>> w = keras.Variable(3.0)
    >>> (loss, _), (grad,) = value_and_gradients(lambda: (w * w, None), [w])
    >>> float(grad)
    6.0
"""

import keras
from keras import ops
from keras.src.backend import get_stateless_scope


def _backend():
    return keras.backend.backend()


def _zeros_for(variable):
    return ops.zeros(variable.shape, dtype=variable.dtype)


# --------------------------------------------------------------------------- JAX
class _RecordingScope(keras.StatelessScope):
    """A StatelessScope seeded with given values (id -> value) that records what is assigned."""

    def __init__(self, mapping):
        super().__init__()
        self.state_mapping = dict(mapping)
        self.assigned = {}

    def add_update(self, update):
        variable, _ = update
        self.assigned[id(variable)] = variable
        super().add_update(update)


def _current_mapping():
    """The variable values of the enclosing StatelessScope (id -> value), or {}."""
    scope = get_stateless_scope()
    return dict(scope.state_mapping) if scope is not None else {}


def _write_back(updates, variables):
    """Assign `updates` (id -> value) to `variables` (id -> variable).

    Inside a StatelessScope (a compiled step) this records the new values in it;
    outside, the variables are assigned directly.
    """
    for key, value in updates.items():
        variables[key].assign(value)


def _jax_pure(fn, variables):
    """`fn` as a pure function of the variables' values, for JAX's transformations.

    Returns:
        `(pure, values, scopes)`: `pure(values)` runs `fn` in a recording scope
        and returns `(fn's result, updates)`, the new values (id -> value) of the
        other variables `fn` assigned; `values` are the variables' current values;
        `scopes[-1].assigned` maps the assigned ids to their variables.
    """
    base = _current_mapping()
    keys = [id(v) for v in variables]
    values = [base.get(id(v), v.value) for v in variables]
    scopes = []

    def pure(values):
        scope = _RecordingScope(base)
        scope.state_mapping.update(zip(keys, values))
        scopes.append(scope)
        with scope:
            result = fn()
        updates = {key: scope.state_mapping[key] for key in scope.assigned if key not in keys}
        return result, updates

    return pure, values, scopes


def _jax_value_and_gradients(fn, variables):
    import jax

    pure, values, scopes = _jax_pure(fn, variables)

    def loss_of(values):
        (loss, aux), updates = pure(values)
        return loss, (aux, updates)

    (loss, (aux, updates)), grads = jax.value_and_grad(loss_of, has_aux=True)(values)
    _write_back(updates, scopes[-1].assigned)
    return (loss, aux), list(grads)


def _jax_input_gradients(fn, x):
    import jax
    import jax.numpy as jnp

    base = _current_mapping()
    scopes = []

    def pure(x):
        scope = _RecordingScope(base)
        scopes.append(scope)
        with scope:
            y = fn(x)
        return jnp.sum(y), {key: scope.state_mapping[key] for key in scope.assigned}

    grads, updates = jax.grad(pure, has_aux=True)(x)
    _write_back(updates, scopes[-1].assigned)
    return grads


def _jax_forward_with_pullback(fn, variables):
    import jax

    pure, values, scopes = _jax_pure(lambda: tuple(fn()), variables)
    outputs, vjp, updates = jax.vjp(pure, values, has_aux=True)
    _write_back(updates, scopes[-1].assigned)

    def pullback(cotangents):
        return list(vjp(tuple(cotangents))[0])

    return outputs, pullback


def _jax_value_and_tensor_gradients(fn, tensors):
    import jax

    base = _current_mapping()
    scopes = []

    def pure(tensors):
        scope = _RecordingScope(base)
        scopes.append(scope)
        with scope:
            loss, aux = fn(*tensors)
        return loss, (aux, {key: scope.state_mapping[key] for key in scope.assigned})

    (loss, (aux, updates)), grads = jax.value_and_grad(pure, has_aux=True)(tuple(tensors))
    _write_back(updates, scopes[-1].assigned)
    return (loss, aux), list(grads)


def _jax_cond_update(pred, fn, output_names):
    import jax
    import jax.numpy as jnp

    if get_stateless_scope() is None:
        raise RuntimeError("cond_update on JAX runs inside a training step (a StatelessScope holding its state)")
    base = _current_mapping()
    keys = list(base)
    scopes = []

    def run(values):
        scope = _RecordingScope(dict(zip(keys, values)))
        scopes.append(scope)
        with scope:
            outputs = fn()
        unknown = [v.path for key, v in scope.assigned.items() if key not in base]
        if unknown:
            raise RuntimeError(f"cond_update: variables outside the step's state were assigned: {unknown}")
        new_values = [scope.state_mapping[key] for key in keys]
        return new_values, {name: jnp.asarray(outputs[name], "float32") for name in output_names}

    def skip(values):
        return list(values), {name: jnp.zeros((), "float32") for name in output_names}

    values = [base[key] for key in keys]
    new_values, outputs = jax.lax.cond(jnp.asarray(pred, bool), run, skip, values)
    assigned = scopes[-1].assigned
    new_by_key = dict(zip(keys, new_values))
    _write_back({key: new_by_key[key] for key in assigned}, assigned)
    return outputs


# -------------------------------------------------------------------------- API
def periodic_train_function(model, period):
    """On JAX, a `fit()` train function that chooses the step's variant on the host.

    Two steps are compiled: `model.train_step` traced with `model.periodic_turn`
    False, and with it True; the second runs on every `period`-th batch (counted
    by `model.optimizer.iterations`, as the in-graph condition would). XLA:CPU
    computes convolutions inside a `lax.cond` branch 15 to 60 times slower than
    outside one (a 4x4 convolution's gradient at batch 8: 4.7 s against 0.07 s),
    so a conditional generator update cost a WGAN-GP step a minute.

    Args:
        model: keras.Model with a compiled optimizer and a `periodic_turn` attribute
            that its `train_step` reads at trace time.
        period: int. Every `period`-th batch takes the True variant.

    Returns:
        The train function, or None where it does not apply: other backends, eager
        or uncompiled runs, `steps_per_execution > 1` and distributed runs (those
        keep the in-graph condition).
    """
    if (
        _backend() != "jax"
        or model.run_eagerly
        or not model.jit_compile
        or model.steps_per_execution > 1
        or keras.distribution.distribution() is not None
    ):
        return None
    import jax

    position = next((i for i, v in enumerate(model.optimizer.variables) if v is model.optimizer.iterations), None)
    if position is None:
        return None

    def compiled(turn):
        def step(state, data):
            model.periodic_turn = turn
            try:
                return model.train_step(state, data)
            finally:
                model.periodic_turn = None

        return jax.jit(step, donate_argnums=0)

    steps = {False: compiled(False), True: compiled(True)}

    def train_function(state, iterator):
        batch = int(state[2][position]) + 1
        return steps[batch % period == 0](state, next(iterator))

    return train_function


def value_and_gradients(fn, variables):
    """Evaluate `fn` and the gradients of its loss with respect to `variables`.

    Args:
        fn: callable. Takes no argument and returns `(loss, aux)`: a scalar loss
            tensor and any structure of tensors returned alongside (or None). It
            reads the variables through Keras layers or `variable.value`.
        variables: list of keras.Variable. The variables to differentiate for.

    Returns:
        `((loss, aux), gradients)`, with one gradient per variable, in order
        (zeros for a variable the loss does not depend on).
    """
    variables = list(variables)
    backend = _backend()
    if backend == "jax":
        return _jax_value_and_gradients(fn, variables)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = fn()
        grads = tape.gradient(loss, variables)
        grads = [_zeros_for(v) if g is None else g for v, g in zip(variables, grads)]
        return (loss, aux), grads
    if backend == "torch":
        import torch

        loss, aux = fn()
        grads = torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)
        grads = [_zeros_for(v) if g is None else g for v, g in zip(variables, grads)]
        return (loss, aux), grads
    raise NotImplementedError(f"no gradient implementation for the {backend!r} backend")


def input_gradients(fn, x):
    """The gradient of `sum(fn(x))` with respect to the tensor `x`, differentiable.

    The result can enter a loss that is then differentiated with respect to the
    variables `fn` reads (second-order gradients, e.g. the WGAN-GP penalty).

    Args:
        fn: callable. Maps a tensor to a tensor.
        x: tensor. The point at which to differentiate.

    Returns:
        A tensor of the shape of `x`.
    """
    backend = _backend()
    if backend == "jax":
        return _jax_input_gradients(fn, ops.convert_to_tensor(x))
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(fn(x))
        return tape.gradient(y, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if backend == "torch":
        import torch

        x = ops.convert_to_tensor(x)
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        y = fn(x).sum()
        (grad,) = torch.autograd.grad(y, x, create_graph=True, allow_unused=True)
        return torch.zeros_like(x) if grad is None else grad
    raise NotImplementedError(f"no gradient implementation for the {backend!r} backend")


def forward_with_pullback(fn, variables):
    """Run `fn` once, keeping what is needed to differentiate its outputs later.

    Variable updates made inside `fn` (BatchNorm moving statistics, seed
    generators) are kept on every backend, once.

    Args:
        fn: callable. Takes no argument and returns a tuple of tensors, reading
            the variables through Keras layers.
        variables: list of keras.Variable. The variables to differentiate for.

    Returns:
        `(outputs, pullback)`: `fn`'s outputs, and a function that takes one
        cotangent per output (the gradient of a scalar loss with respect to that
        output, of its shape) and returns the loss's gradients with respect to
        `variables`, in order (zeros for a variable the outputs do not depend
        on). Call `pullback` at most once.

    Examples:
        >>> import keras
        >>> from keras import ops
        >>> from keras_colorize.training.gradients import forward_with_pullback
        >>> w = keras.Variable(3.0)
        >>> (y,), pullback = forward_with_pullback(lambda: (w * w,), [w])
        >>> (grad,) = pullback((ops.ones(()),))
        >>> float(y), float(grad)
        (9.0, 6.0)
    """
    variables = list(variables)
    backend = _backend()
    if backend == "jax":
        return _jax_forward_with_pullback(fn, variables)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outputs = tuple(fn())

        def pullback(cotangents):
            grads = tape.gradient(outputs, variables, output_gradients=list(cotangents))
            return [_zeros_for(v) if g is None else g for v, g in zip(variables, grads)]

        return outputs, pullback
    if backend == "torch":
        import torch

        outputs = tuple(fn())

        def pullback(cotangents):
            grads = torch.autograd.grad(
                outputs, [v.value for v in variables], grad_outputs=list(cotangents), allow_unused=True
            )
            return [_zeros_for(v) if g is None else g for v, g in zip(variables, grads)]

        return outputs, pullback
    raise NotImplementedError(f"no gradient implementation for the {backend!r} backend")


def value_and_tensor_gradients(fn, tensors):
    """Evaluate `fn(*tensors)` and the gradients of its loss with respect to `tensors`.

    The gradients are first order (not themselves differentiable): the
    cotangents that `forward_with_pullback`'s pullback takes.

    Args:
        fn: callable. Takes the tensors and returns `(loss, aux)`: a scalar loss
            and any structure of tensors returned alongside (or None).
        tensors: sequence of tensors.

    Returns:
        `((loss, aux), gradients)`, one gradient per tensor, in order (zeros for
        a tensor the loss does not depend on).
    """
    tensors = tuple(ops.convert_to_tensor(t) for t in tensors)
    backend = _backend()
    if backend == "jax":
        return _jax_value_and_tensor_gradients(fn, tensors)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(tensors)
            loss, aux = fn(*tensors)
        grads = tape.gradient(loss, list(tensors), unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return (loss, aux), grads
    if backend == "torch":
        import torch

        leaves = tuple(t.detach().requires_grad_(True) for t in tensors)
        loss, aux = fn(*leaves)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]
        return (loss, aux), grads
    raise NotImplementedError(f"no gradient implementation for the {backend!r} backend")


def cond_update(pred, fn, output_names):
    """Run `fn` only when `pred` is true, inside one compiled step.

    `fn` may update variables (apply an optimizer, move BatchNorm statistics);
    when `pred` is false nothing changes. TensorFlow and JAX build both branches
    into the compiled step (`ops.cond`; on JAX `jax.lax.cond` over the step's
    state), so the skipped work costs nothing; PyTorch runs eagerly.

    Args:
        pred: scalar boolean tensor.
        fn: callable. Takes no argument and returns a dict of scalar tensors
            whose keys are `output_names`.
        output_names: sequence of str. The keys of `fn`'s result.

    Returns:
        A dict of float32 scalars: `fn`'s outputs, or zeros when skipped.
    """
    output_names = tuple(output_names)

    def run():
        outputs = fn()
        return {name: ops.cast(outputs[name], "float32") for name in output_names}

    def skip():
        return {name: ops.zeros((), "float32") for name in output_names}

    if _backend() == "jax":
        return _jax_cond_update(pred, run, output_names)
    return ops.cond(pred, run, skip)


def replicas_in_sync():
    """The number of replicas whose gradients an optimizer update sums.

    Under a TensorFlow `tf.distribute` strategy (MirroredStrategy,
    MultiWorkerMirroredStrategy), `optimizer.apply` sums the replicas' gradients,
    so a replica's loss, a mean over its share of the global batch, is divided by
    this number first (as Keras's own losses are). JAX's data parallelism computes
    the step on the global batch, and PyTorch runs on one device: 1.

    Returns:
        int.
    """
    if _backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def _needs_cross_replica_cond():
    """Whether an update under a condition must be decided outside the replicas (TF MirroredStrategy)."""
    if _backend() != "tensorflow":
        return False
    import tensorflow as tf

    return (
        tf.distribute.has_strategy()
        and tf.distribute.in_cross_replica_context() is False
        and tf.distribute.get_strategy().num_replicas_in_sync > 1
        and not tf.__internal__.distribute.strategy_supports_no_merge_call()
    )


def apply_if(pred, optimizer, grads, variables):
    """Apply `grads` to `variables` with `optimizer` only when `pred` holds on every replica.

    Without replicas this is `cond_update` around `optimizer.apply`. Under a
    TensorFlow strategy whose updates synchronise the replicas (MirroredStrategy),
    the condition is decided once for all replicas outside them, since a
    synchronising update cannot sit inside a conditional of a replica.

    Args:
        pred: scalar boolean tensor, per replica.
        optimizer: keras.optimizers.Optimizer.
        grads: list of tensors, one per variable.
        variables: list of keras.Variable.

    Returns:
        A scalar boolean tensor: whether the update happened (the same on every replica).
    """
    if _needs_cross_replica_cond():
        import tensorflow as tf

        def decide(strategy, pred, grads):
            everywhere = ops.all(ops.stack(strategy.experimental_local_results(pred)))

            def update():
                strategy.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))

            ops.cond(everywhere, update, lambda: None)
            return everywhere

        return tf.distribute.get_replica_context().merge_call(decide, args=(pred, grads))

    def update():
        optimizer.apply(grads, variables)
        return {"applied": ops.ones((), "float32")}

    return ops.greater(cond_update(pred, update, ["applied"])["applied"], 0.5)


def run_stateful_step(model, state, step_fn):
    """Run a step that reads and assigns variables, statelessly on JAX.

    On JAX, `fit()` calls `train_step(state, data)` with the values of
    `model.trainable_variables`, `model.non_trainable_variables`,
    `model.optimizer.variables` and `model.metrics_variables` (`evaluate()` calls
    `test_step(state, data)` with the same but the optimizer's), and expects the
    new values back: the step runs in a `keras.StatelessScope` holding them.
    Other backends call `train_step(data)` and update variables in place.

    Args:
        model: keras.Model. The trainer.
        state: tuple of 4 lists (JAX training), 3 lists (JAX evaluation) or None
            (other backends).
        step_fn: callable. Takes no argument, runs the step, returns the logs.

    Returns:
        `logs` when `state` is None, else `(logs, new_state)`.
    """
    if state is None:
        return step_fn()
    groups = (model.trainable_variables, model.non_trainable_variables)
    if len(state) == 4:
        groups += (model.optimizer.variables,)
    groups += (model.metrics_variables,)
    mapping = [(variable, value) for group, values in zip(groups, state) for variable, value in zip(group, values)]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = step_fn()
    new_state = tuple(
        [scope.get_current_value(variable) if scope.get_current_value(variable) is not None else value
         for variable, value in zip(group, values)]
        for group, values in zip(groups, state)
    )
    return logs, new_state
