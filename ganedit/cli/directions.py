"""`ganedit directions interfacegan|ganspace|sefa|show`: compute latent editing directions for a StyleGAN2 model
and write them as one direction file (``ganedit.edit.directions``), or describe such a file."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import click

from ganedit.errors import ConfigError

_MODEL = click.option("--model", "model_path", required=True,
                      help="StyleGAN2 checkpoint (native folder, rosinality .pt, NVlabs .pkl) or a shipped name "
                           "such as stylegan2-synth64.")
_OUT = click.option("-o", "--out", "out", required=True, type=click.Path(), help="Direction file to write (.safetensors).")
_LAYERS = click.option("--layers", default=None,
                       help="Rows of w+ the directions are meant for, 'a-b' inclusive (default: all). SeFa also "
                            "computes its directions from these rows' modulation weights.")
_SEED = click.option("--seed", default=0, show_default=True, help="Seed of the sampled latents.")


def _load(model_path: str):
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2

    return load_stylegan2(resolve_model(model_path))


def _layers(text: Optional[str], model) -> Optional[range]:
    from ganedit.edit.latents import parse_layers

    return parse_layers(text, model.n_latent)


def _written(path, directions) -> None:
    names = ", ".join(directions.names[:8]) + (", ..." if len(directions) > 8 else "")
    rows = "all" if directions.layers is None else f"{directions.layers.start}-{directions.layers.stop - 1}"
    click.echo(f"wrote {path}: {directions.method}, {len(directions)} direction(s) [{names}], layers {rows}")


def _regressor_labels(regressor: Optional[str]):
    try:
        from ganedit.models.attributes import predict_factors
    except ImportError:
        raise ConfigError("the attribute regressor (ganedit.models.attributes) is not part of this install: label "
                          "your own latents with --latents and --labels instead") from None
    return lambda images: predict_factors(images, regressor)


def _regressor_readings(regressor: Optional[str]):
    """The labeller ``--layers auto`` measures edits with (``ganedit.metrics.attributes.edit_readings``): the
    regressor's continuous factors (a colour as its mean over RGB) and its binary ones as probabilities, which
    change smoothly along an edit, NaN where an image hides a factor; circular and categorical factors are left
    out (an angle wraps, a class flips)."""
    try:
        from ganedit.metrics.attributes import edit_readings
        from ganedit.models.attributes import load_regressor
    except ImportError:
        raise ConfigError("--layers auto reads edited images with the attribute regressor (ganedit.models.attributes), "
                          "which is not part of this install") from None
    net = load_regressor(regressor)
    return lambda images: edit_readings(images, net)


def _parts_of(attribute: str) -> Tuple[str, ...]:
    """The regressor's factors that exist only with ``attribute`` (the frame colour of glasses): not leakage."""
    try:
        from ganedit.models.attributes import HIDDEN_BY
    except ImportError:  # readings from elsewhere (no world regressor in this install): nothing is known to hide
        return ()
    return HIDDEN_BY.get(attribute, ())


def _conditions(specs: Sequence[str], model, computed: Dict[str, "object"]) -> Dict[str, "object"]:
    """--condition NAME (an attribute of this run) or FILE[:NAME] (a direction file) -> {name: vector}."""
    from pathlib import Path

    from ganedit.edit.directions import load_direction

    found = {}
    for spec in specs:
        if spec in computed:
            found[spec] = computed[spec]
            continue
        path, _, name = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
        directions = load_direction(path, model)
        keys = [name] if name else list(directions.names)
        for key in keys:
            found[f"{Path(path).stem}:{key}"] = directions.vector(key)
    return found


def register(cli: click.Group) -> None:
    @cli.group("directions")
    def directions_group() -> None:
        """Compute latent editing directions (InterFaceGAN, GANSpace, SeFa) for a StyleGAN2 model.

        Each writes one .safetensors direction file holding unit vectors in W, their names, the w+ rows they are
        meant for and the fingerprint of the generator; `ganedit edit --direction` and
        `ganedit.edit.directions.load_direction` refuse the file for a generator it does not fit.
        """

    @directions_group.command("interfacegan")
    @_MODEL
    @click.option("--attribute", "attributes", multiple=True, required=True,
                  help="Attribute to find (repeat for several; one vector each). With the regressor: a factor name "
                       "(smile, yaw, glasses, ...; 'color.hair[0]' picks one channel). With --labels: a CSV column.")
    @click.option("--regressor", default=None, type=click.Path(exists=True),
                  help="Attribute regressor folder that labels generated images (default: the shipped one).")
    @click.option("--latents", default=None, type=click.Path(exists=True),
                  help="Label your own latents instead: a latents file (from `ganedit project`/`invert`) ...")
    @click.option("--labels", default=None, type=click.Path(exists=True),
                  help="... and a CSV with a 'name' column (the latents' names) and one column per attribute.")
    @click.option("--n-samples", default=20000, show_default=True, help="Generated images to label (regressor mode).")
    @click.option("--extremes", default=0.1, show_default=True,
                  help="For scores: the top and bottom fraction of samples are the two classes.")
    @click.option("--positive-class", default=None, type=int,
                  help="For class labels with more than two classes: this class against the rest.")
    @click.option("--condition", "conditions", multiple=True,
                  help="Make the direction orthogonal to another: an attribute of this run, or FILE[:NAME] "
                       "(a direction file). Repeatable (conditional editing).")
    @click.option("--truncation", default=1.0, show_default=True, help="psi of the sampled latents.")
    @click.option("--fit", type=click.Choice(["classifier", "regression"]), default="classifier", show_default=True,
                  help="classifier: logistic regression on the extremes (the paper); regression: ridge regression "
                       "of the scores on w over every sample (better for a noisy continuous score).")
    @click.option("--layers", default=None,
                  help="Rows of w+ the direction is meant for, 'a-b' inclusive (default: all), or 'auto': the "
                       "contiguous rows where the edit changes the attribute most for the least change of the other "
                       "factors, measured by the regressor on --layer-samples other generated latents.")
    @click.option("--layer-samples", default=128, show_default=True, help="Latents --layers auto measures edits on.")
    @_SEED
    @_OUT
    def interfacegan_cmd(model_path, attributes, regressor, latents, labels, n_samples, extremes, positive_class,
                         conditions, truncation, fit, layers, layer_samples, seed, out) -> None:
        """InterFaceGAN: a linear classifier between latents with and without an attribute; the unit normal of
        its boundary is the direction.

        \b
        Examples:
          ganedit directions interfacegan --model G --attribute smile --attribute yaw -o faces.safetensors
          ganedit directions interfacegan --model G --attribute smile --condition yaw -o smile_not_yaw.safetensors
          ganedit directions interfacegan --model G --attribute smile --fit regression --layers auto -o smile.safetensors
          ganedit directions interfacegan --model G --latents mine.safetensors --labels mine.csv --attribute smile -o d.safetensors
        """
        import torch

        from ganedit.edit import directions as D

        model = _load(model_path)
        auto = str(layers).strip() == "auto"
        rows = None if auto else _layers(layers, model)
        if auto and latents is not None:
            raise ConfigError("--layers auto measures edits of generated images with the regressor: it does not "
                              "work with --latents/--labels; give --layers a-b")
        if (latents is None) != (labels is None):
            raise ConfigError("--latents and --labels go together (your latents and their labels)")
        if latents is not None:
            from ganedit.edit.latents import load_latents

            codes = load_latents(latents, model)
            w = codes.wplus.mean(1)
            label_table = {a: D.read_labels_csv(labels, codes.names, a) for a in attributes}
        else:
            click.echo(f"labelling {n_samples} generated images ...", err=True)
            w, label_table = D.label_samples(model, _regressor_labels(regressor), n_samples, seed, truncation)
        plain: Dict[str, torch.Tensor] = {}
        for a in (attributes if set(conditions) & set(attributes) else ()):  # unconditioned vectors to condition on
            plain[a] = D.interfacegan(model, (w, label_table), attribute=a, extreme_fraction=extremes,
                                      positive_class=positive_class, layers=rows, seed=seed, fit=fit).vector(0)
        parts = []
        for a in attributes:
            conds = _conditions([c for c in conditions if c != a], model, plain)
            part = D.interfacegan(model, (w, label_table), attribute=a, extreme_fraction=extremes,
                                  positive_class=positive_class, conditions=conds or None, layers=rows, seed=seed,
                                  truncation=truncation, fit=fit)
            part.meta["labels"] = "csv" if latents is not None else "regressor"
            quality = (f"held-out R² {part.meta['validation_r2']:.3f}" if fit == "regression"
                       else f"validation accuracy {part.meta['validation_accuracy']:.3f}")
            click.echo(f"{a}: {quality} on {part.meta['n_trained']} latents"
                       + (f", conditioned on {', '.join(part.meta['conditioned_on'])}" if conds else ""), err=True)
            if auto:  # other latents than the fit's (seed + 1), read by the same regressor
                part = D.choose_layers(model, part, _regressor_readings(regressor), n_samples=layer_samples,
                                       seed=seed + 1, parts_of_target=_parts_of(a))
                choice = part.meta["layer_choice"]
                click.echo(f"{a}: layers {choice['rows'][0]}-{choice['rows'][1]} (change / leakage {choice['ratio']:.2f}; "
                           f"all rows {choice['all_rows_ratio']:.2f})", err=True)
            parts.append(part)
        if auto and len({p.layers for p in parts}) > 1:
            chosen = ", ".join(f"{p.names[0]} {p.meta['layer_choice']['rows']}" for p in parts)
            raise ConfigError(f"--layers auto chose different rows per attribute ({chosen}): a file holds one row "
                              "range, so write one file per --attribute")
        result = D.combine(parts)
        _written(D.save_direction(out, result), result)

    @directions_group.command("ganspace")
    @_MODEL
    @click.option("--n-samples", default=20000, show_default=True, help="Sampled latents for the PCA.")
    @click.option("--components", default=32, show_default=True, help="Principal components to keep.")
    @click.option("--truncation", default=1.0, show_default=True, help="psi of the sampled latents.")
    @_LAYERS
    @_SEED
    @_OUT
    def ganspace_cmd(model_path, n_samples, components, truncation, layers, seed, out) -> None:
        """GANSpace: principal components of sampled w, by decreasing variance (pc0, pc1, ...).

        \b
        Example:
          ganedit directions ganspace --model G --components 16 --layers 0-3 -o pcs.safetensors
        """
        from ganedit.edit import directions as D

        model = _load(model_path)
        result = D.ganspace(model, n_samples, min(components, model.style_dim), _layers(layers, model), seed, truncation)
        ratios = result.meta.get("explained_variance_ratio") or []
        click.echo(f"explained variance of the first components: {', '.join(f'{r:.3f}' for r in ratios[:5])}", err=True)
        _written(D.save_direction(out, result), result)

    @directions_group.command("sefa")
    @_MODEL
    @click.option("--components", default=None, type=int, help="Eigenvectors to keep (default: all).")
    @click.option("--include-torgb", is_flag=True, help="Also use the ToRGB layers' modulation weights.")
    @_LAYERS
    @_OUT
    def sefa_cmd(model_path, components, include_torgb, layers, out) -> None:
        """SeFa: closed-form directions, the eigenvectors of the chosen layers' stacked modulation weights.

        \b
        Example:
          ganedit directions sefa --model G --layers 0-3 --components 10 -o sefa_coarse.safetensors
        """
        from ganedit.edit import directions as D

        model = _load(model_path)
        result = D.sefa(model, _layers(layers, model), components, include_torgb)
        _written(D.save_direction(out, result), result)

    @directions_group.command("show")
    @click.argument("path")
    @click.option("--model", "model_path", default=None, help="Also check that the file fits this generator.")
    def show_cmd(path, model_path) -> None:
        """Describe a direction file (a path, or a shipped one: MODEL/NAME such as
        stylegan2-synth64/interfacegan_yaw): method, names, layers, generator."""
        from ganedit.edit.directions import load_direction, resolve_direction

        model = _load(model_path) if model_path else None
        d = load_direction(resolve_direction(path), model)
        rows = "all" if d.layers is None else f"{d.layers.start}-{d.layers.stop - 1}"
        click.echo(f"{path}: {d.method}, {len(d)} x {d.style_dim}-d, layers {rows}")
        g = d.generator or {}
        click.echo(f"generator: {g.get('size')} px, style_dim {g.get('style_dim')}, n_latent {g.get('n_latent')}, hash {g.get('hash')}")
        choice = d.meta.get("layer_choice")
        if choice:
            click.echo(f"layers chosen on {choice['n_samples']} held-out latents: change / leakage {choice['ratio']:.2f} "
                       f"on rows {choice['rows'][0]}-{choice['rows'][1]}, {choice['all_rows_ratio']:.2f} on all rows")
        for i, name in enumerate(d.names[:32]):
            extra = []
            if d.values is not None:
                extra.append(f"value {float(d.values[i]):.4g}")
            if d.scales is not None:
                extra.append(f"sigma {float(d.scales[i]):.4g}")
            click.echo(f"  {i:3d} {name} {' '.join(extra)}")
        if model is not None:
            click.echo("fits the given generator")
