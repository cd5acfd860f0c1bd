"""Invert & edit tab: an image inverted into a StyleGAN2 generator (projection, PTI or a pSp / e4e encoder), its
reconstruction and PSNR beside it, then edits that only re-decode the kept code: direction sliders on a layer
range, and style mixing with a second inverted image. Long inversions report progress and can be cancelled."""
# no `from __future__ import annotations`: Gradio finds the gr.Request parameter by its evaluated annotation
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from ganedit.app import editing, work
from ganedit.app.context import AppContext, no_model_note
from ganedit.app.uploads import read_upload
from ganedit.data.io import to_uint8_hwc
from ganedit.errors import ConfigError, GaneditError

TITLE = "Invert & edit"
KIND = "stylegan2"
N_SLIDERS = 5
DEFAULT_STEPS = 100  # about 20 s at 64 px on one busy CPU core; the slider goes higher for a closer fit
DEFAULT_TUNE_STEPS = 50
POLL_SECONDS = 0.3  # how often the progress line is refreshed
log = logging.getLogger("ganedit.app")

_cancel: Dict[str, threading.Event] = {}  # session -> the flag its running inversion polls


def _in_thread(fn: Callable[[], Any]) -> Iterator[None]:
    """Run ``fn`` in a thread, yielding every POLL_SECONDS while it runs; the generator's return value is fn's."""
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the handler's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_SECONDS)
        yield None
    if "error" in box:
        raise box["error"]
    return box["result"]


def _forget(held: Optional[Dict[str, Any]]) -> None:
    """When a session ends, its download folder goes with it."""
    if held and held.get("folder"):
        shutil.rmtree(held["folder"], ignore_errors=True)


def _rows(text: Optional[str], n_latent: int, none_word: str) -> Optional[range]:
    from ganedit.cli.edit import parse_rows

    if text is None or str(text).strip() in ("", none_word):
        return None
    return parse_rows(str(text).strip(), n_latent)


def build(ctx: AppContext) -> None:
    import gradio as gr

    names = ctx.catalog.names(KIND)
    gr.Markdown("Invert an image into a StyleGAN2 generator, see how faithful the inversion is (reconstruction and "
                "PSNR beside the input), then edit the code: direction sliders on a layer range, and style mixing "
                "with a second image (as `ganedit project` / `ganedit pti` / `ganedit edit`).")
    if not names:
        gr.Markdown(no_model_note("StyleGAN2", "Train one with `ganedit train stylegan2` or convert an official "
                                  "checkpoint with `ganedit convert`."))
        return

    def generator(name: str) -> Any:
        return work.load(ctx.catalog, name, KIND, ctx.device)

    def load_encoder(name: str) -> Any:
        return work.load(ctx.catalog, name, "encoder", ctx.device)

    def inverter_choices(name: str) -> List[str]:
        encoders = editing.fitting_encoders(ctx.catalog, generator(name), load_encoder)
        return list(editing.INVERTERS) + [editing.ENCODER_PREFIX + e for e in encoders]

    def encoder_note(name: str) -> str:
        n = len(inverter_choices(name)) - len(editing.INVERTERS)
        if n:
            return f"{n} pSp / e4e encoder(s) under `--models` fit this generator; they invert in one pass."
        return ("No pSp / e4e encoder fits this generator: none is shipped yet and none was found under `--models` "
                "(train one with `ganedit train psp` / `e4e`). Projection and PTI work on any generator.")

    first = names[0]
    model = gr.Dropdown(names, value=first, label="generator", elem_id="invert-model")
    info = gr.Markdown(ctx.catalog.info(first, KIND), elem_id="invert-info")
    with gr.Row():
        with gr.Column():
            image = gr.File(label="image to invert", file_types=["image"], elem_id="invert-input")
            second = gr.File(label="second image, for style mixing (optional)", file_types=["image"], elem_id="invert-second")
        with gr.Column():
            inverter = gr.Radio(inverter_choices(first), value="projection", label="inverter", elem_id="invert-method")
            note = gr.Markdown(encoder_note(first), elem_id="invert-encoder-note")
            space = gr.Radio(["w", "w+"], value="w", label="projection space (w: edits behave best; w+: closer fit)", elem_id="invert-space")
            steps = gr.Slider(10, 2000, value=DEFAULT_STEPS, step=10, label="projection steps (PTI: its pivot's)", elem_id="invert-steps")
            tune_steps = gr.Slider(0, 500, value=DEFAULT_TUNE_STEPS, step=10, label="PTI tuning steps (at most)", elem_id="invert-tune-steps")
            seed = gr.Number(0, precision=0, label="seed (the same seed gives the same inversion)", elem_id="invert-seed")
    with gr.Row():
        run = gr.Button("Invert", variant="primary", elem_id="invert-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="invert-cancel")
    status = gr.Textbox(label="status", interactive=False, elem_id="invert-status")
    with gr.Row():
        target_img = gr.Image(label="input, as the generator sees it", type="numpy", format="png", interactive=False, height=200,
                              elem_classes=["pixels"], elem_id="invert-target")
        recon_img = gr.Image(label="reconstruction", type="numpy", format="png", interactive=False, height=200,
                             elem_classes=["pixels"], elem_id="invert-recon")
        result_img = gr.Image(label="edited", type="numpy", format="png", interactive=False, height=200,
                              elem_classes=["pixels"], elem_id="invert-result")
    fidelity = gr.Markdown("", elem_id="invert-psnr")
    with gr.Row():
        choices = editing.direction_choices(ctx.catalog, generator(first))
        direction_set = gr.Dropdown(choices, value=choices[0][1], label="directions", elem_id="invert-directions")
        layers = gr.Dropdown(["all", "coarse", "middle", "fine"], value="all", allow_custom_value=True,
                             label="layers the directions move (all, coarse, middle, fine, or w+ rows a-b)", elem_id="invert-layers")
        mix_layers = gr.Dropdown(["none", "coarse", "middle", "fine"], value="none", allow_custom_value=True,
                                 label="style mixing: rows taken from the second image (none, coarse, middle, fine, a-b)",
                                 elem_id="invert-mix-layers")
    units = gr.Markdown("Slider strengths count standard deviations of sampled w along each direction.", elem_id="invert-units")
    with gr.Row():
        sliders = [gr.Slider(-5.0, 5.0, value=0.0, step=0.25, label=f"direction {i}", elem_id=f"invert-strength-{i}")
                   for i in range(N_SLIDERS)]
    downloads = gr.File(label="downloads: the edited image and the latents file (rows: inverted, edited)", file_count="multiple",
                        interactive=False, elem_id="invert-files")
    state = gr.State(None, delete_callback=_forget)

    def on_model(name):
        options = editing.direction_choices(ctx.catalog, generator(name))
        # a kept code belongs to the previous generator: dropped, so the sliders cannot decode it with this one
        return (ctx.catalog.info(name, KIND), gr.update(choices=inverter_choices(name), value="projection"),
                encoder_note(name), gr.update(choices=options, value=options[0][1]), None)

    def on_directions(name, key):
        found = editing.directions_for(ctx.catalog, generator(name), key)
        unit = ("standard deviations of sampled w along each direction" if found.scales is not None else "units of w")
        labels = [gr.update(label=f"{found.names[i]}" if i < len(found) else f"direction {i} (not in this set)",
                            interactive=i < len(found), value=0.0) for i in range(N_SLIDERS)]
        return [editing.layers_text(found), f"Slider strengths count {unit}.", *labels]

    def render(name, held, key, lay, mixing, strengths):
        """(edited image, download paths) of the kept inversion under the current edit settings."""
        G = generator(name)
        directions = editing.directions_for(ctx.catalog, G, key)
        n_latent = int(G.n_latent)
        rows = _rows(lay, n_latent, "all")
        mix_rows = _rows(mixing, n_latent, "none")
        other = held.get("other")
        if mix_rows is not None and other is None:
            raise ConfigError("style mixing needs a second image: upload one and press Invert")
        code = editing.edited_code(held["main"], directions, strengths[:len(directions)], rows, other, mix_rows)
        picture = to_uint8_hwc(held["main"].decode(code)[0])
        return picture, editing.save_downloads(Path(held["folder"]), picture, held["main"], code)

    def do_edit(name, held, key, lay, mixing, *strengths):
        if not held:
            return gr.skip(), gr.skip(), "invert an image first: the sliders edit its code"
        try:
            picture, files = render(name, held, key, lay, mixing, list(strengths))
            return picture, files, "done"
        except GaneditError as exc:
            return None, None, f"error: {exc}"

    # the request comes first: Gradio passes it by position, and the slider values follow as *strengths
    def do_invert(request: gr.Request, previous, name, upload, upload2, method, sp, n_steps, n_tune, sd, key, lay, mixing, *strengths):
        session = getattr(request, "session_hash", None) or "default"
        # a new flag per run: an earlier run's generator, finalised late by Gradio, must not clear this run's flag
        flag = threading.Event()
        _cancel[session] = flag
        skip = [gr.skip()] * 6
        try:
            G = generator(name)
            size = int(G.size)
            targets = [read_upload(upload, "image to invert", size)]
            if upload2 is not None:
                targets.append(read_upload(upload2, "second image", size))
            yield [to_uint8_hwc(targets[0][0]), *skip[1:], "starting"]
            encoder_path = None
            kind = method
            if method.startswith(editing.ENCODER_PREFIX):
                encoder_path = str(ctx.catalog.get(method[len(editing.ENCODER_PREFIX):], "encoder").path)
                kind = "encoder"
            elif method not in editing.INVERTERS:
                raise ConfigError(f"unknown inverter {method!r}")
            found: List[editing.Inverted] = []
            for k, target in enumerate(targets):
                seen: Dict[str, Any] = {}
                which = f"image {k + 1} of {len(targets)}: " if len(targets) > 1 else ""

                def progress(step: int, total: int, stats: Dict[str, float], _seen=seen) -> None:
                    _seen.update(step=step, total=total, loss=stats.get("loss", float("nan")))

                job = lambda t=target, p=progress: editing.invert(  # noqa: E731 (bound per image)
                    G, t, kind, steps=int(n_steps), tune_steps=int(n_tune), space=sp, seed=int(sd or 0),
                    encoder_path=encoder_path, progress=p, cancel=flag.is_set)
                runner = _in_thread(job)
                while True:
                    try:
                        next(runner)
                    except StopIteration as done:
                        found.append(done.value)
                        break
                    if flag.is_set():
                        yield [*skip, "cancelling..."]
                    elif "step" in seen:
                        yield [*skip, f"{which}{method}: step {seen['step']} / {seen['total']}, loss {seen['loss']:.4f}"]
                if flag.is_set():
                    yield [*skip, f"cancelled at step {seen.get('step', 0)} of {seen.get('total', '?')}; "
                           "the previous inversion (if any) is kept"]
                    return
            _forget(previous)  # the previous inversion's downloads are replaced
            folder = tempfile.mkdtemp(prefix="ganedit-invert-")
            held = {"main": found[0], "other": found[1] if len(found) > 1 else None, "folder": folder}
            main = found[0]
            picture, files = render(name, held, key, lay, mixing, list(strengths))
            how = {"projection": f"{main.steps} steps in {sp}, seed {int(sd or 0)}",
                   "PTI": f"{int(n_steps)} pivot steps + {main.steps} tuning steps, seed {int(sd or 0)}",
                   "encoder": "one pass"}[kind]
            line = f"Reconstruction PSNR **{main.psnr:.2f} dB** ({method}: {how})"
            if held["other"] is not None:
                line += f"; second image {held['other'].psnr:.2f} dB"
            yield [to_uint8_hwc(main.target[0]), to_uint8_hwc(main.reconstruction[0]), line, picture, files, held, "done"]
        except GaneditError as exc:
            yield [*skip, f"error: {exc}"]
        except Exception as exc:  # a bug, not bad input: no traceback to the browser
            log.exception("invert failed")
            yield [*skip, f"error: unexpected failure ({type(exc).__name__}); the server log has details"]
        finally:
            if _cancel.get(session) is flag:
                del _cancel[session]

    def do_cancel(request: gr.Request) -> None:
        # no output of its own: the running inversion says "cancelling" and then "cancelled" in its status line
        # (a reply from here could arrive after those and overwrite them)
        flag = _cancel.get(getattr(request, "session_hash", None) or "default")
        # one line in the server log either way: a cancel that finds nothing running is visible there
        log.info("invert: cancel requested" + ("" if flag is not None else "; no inversion of this session is running"))
        if flag is not None:
            flag.set()

    model.change(on_model, model, [info, inverter, note, direction_set, state])
    edit_inputs = [model, state, direction_set, layers, mix_layers, *sliders]
    direction_set.change(on_directions, [model, direction_set], [layers, units, *sliders])
    run.click(do_invert, [state, model, image, second, inverter, space, steps, tune_steps, seed, direction_set, layers, mix_layers, *sliders],
              [target_img, recon_img, fidelity, result_img, downloads, state, status])
    cancel.click(do_cancel, None, None, concurrency_limit=None, queue=False)
    for control in (layers, mix_layers, *sliders):
        control.change(do_edit, edit_inputs, [result_img, downloads, status], trigger_mode="always_last")
    gr.Examples([[ctx.example("synth_face_0.png"), ctx.example("synth_face_1.png")],
                 [ctx.example("synth_face_2.png"), None],
                 [ctx.example("photo_astronaut.png"), None]],
                [image, second], label="examples (click one, then Invert)")
