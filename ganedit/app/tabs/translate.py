"""Translate tab: a pix2pix or CycleGAN generator on one uploaded image."""
from __future__ import annotations

from ganedit.app import work
from ganedit.app.context import AppContext, guarded, no_model_note

TITLE = "Translate"
KIND = "translation"


def build(ctx: AppContext) -> None:
    import gradio as gr

    names = ctx.catalog.names(KIND)
    gr.Markdown("Image-to-image translation with a pix2pix or CycleGAN generator (eval mode, as `ganedit translate`).")
    if not names:
        gr.Markdown(no_model_note("pix2pix or CycleGAN", "Train one with `ganedit train pix2pix` / `ganedit train "
                                  "cyclegan`, or convert an official one with `ganedit convert`."))
        return
    model = gr.Dropdown(names, value=names[0], label="model", elem_id="translate-model")
    info = gr.Markdown(ctx.catalog.info(names[0], KIND), elem_id="translate-info")
    model.change(lambda n: ctx.catalog.info(n, KIND), model, info)
    direction = gr.Radio(["AtoB", "BtoA"], value="AtoB", label="direction (BtoA needs a CycleGAN pair)", elem_id="translate-direction")
    with gr.Row():
        image = gr.File(label="input image", file_types=["image"], elem_id="translate-input")
        result = gr.Image(label="result", type="numpy", format="png", interactive=False, height=256, elem_classes=["pixels"], elem_id="translate-result")
    size = gr.Slider(32, 512, value=256, step=32, label="resize the input to N x N first", elem_id="translate-size")
    run = gr.Button("Translate", variant="primary", elem_id="translate-run")
    status = gr.Textbox(label="status", interactive=False, elem_id="translate-status")

    def handler(name, img, d, n):
        return work.translate(ctx.catalog, ctx.device, name, img, d, int(n))

    run.click(guarded(handler), [model, image, direction, size], [result, status])
    gr.Examples([[ctx.example("synth_face_0.png")], [ctx.example("synth_domain_y.png")], [ctx.example("photo_chelsea.png")]],
                [image], label="examples (click one, then Translate)")
