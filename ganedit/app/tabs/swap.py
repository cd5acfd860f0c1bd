"""Swap tab: Swapping Autoencoder structure/texture swap with a texture-strength slider, and region edits
(blend or copy the texture image's structure inside a rectangle into the structure image)."""
from __future__ import annotations

from ganedit.app import work
from ganedit.app.context import AppContext, guarded, no_model_note

TITLE = "Swap"
KIND = "swapae"

def build(ctx: AppContext) -> None:
    import gradio as gr

    names = ctx.catalog.names(KIND)
    gr.Markdown("Structure (layout, shapes) of one image with the texture (colours, materials) of another: "
                "the Swapping Autoencoder. Images are centre-cropped and resized to the model's size.")
    if not names:
        gr.Markdown(no_model_note("Swapping Autoencoder", "Train one with `ganedit train swapae`."))
        return
    model = gr.Dropdown(names, value=names[0], label="model", elem_id="swap-model")
    info = gr.Markdown(ctx.catalog.info(names[0], KIND), elem_id="swap-info")
    model.change(lambda n: ctx.catalog.info(n, KIND), model, info)
    with gr.Row():
        with gr.Column():
            structure = gr.File(label="structure image", file_types=["image"], elem_id="swap-structure")
            structure_seen = gr.Image(label="structure, as the model sees it", interactive=False, height=128, elem_classes=["pixels"],
                                      elem_id="swap-structure-seen")
        with gr.Column():
            texture = gr.File(label="texture image", file_types=["image"], elem_id="swap-texture")
            texture_seen = gr.Image(label="texture, as the model sees it", interactive=False, height=128, elem_classes=["pixels"],
                                    elem_id="swap-texture-seen")
        result = gr.Image(label="result", type="numpy", format="png", interactive=False, height=256, elem_classes=["pixels"], elem_id="swap-result")
    alpha = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="texture strength (0 = reconstruct the structure image, 1 = full swap)", elem_id="swap-alpha")
    mode = gr.Radio(["swap", "blend", "copy"], value="swap", label="mode: whole-image swap, or a region edit that "
                    "blends / copies the texture image's structure inside the rectangle below", elem_id="swap-mode")
    with gr.Row():
        boxes = [gr.Slider(0.0, 1.0, value=v, step=0.05, label=label) for v, label in
                 ((0.25, "region x0"), (0.25, "region y0"), (0.75, "region x1"), (0.75, "region y1"))]
    run = gr.Button("Swap", variant="primary", elem_id="swap-run")
    status = gr.Textbox(label="status", interactive=False, elem_id="swap-status")

    def handler(name, a, b, al, md, x0, y0, x1, y1):
        return work.swap(ctx.catalog, ctx.device, name, a, b, al, md, (x0, y0, x1, y1))

    def preview(name, upload):
        return None if upload is None else work.preview(ctx.catalog, ctx.device, name, KIND, upload)

    structure.change(guarded(preview), [model, structure], [structure_seen, status])
    texture.change(guarded(preview), [model, texture], [texture_seen, status])
    run.click(guarded(handler), [model, structure, texture, alpha, mode, *boxes], [result, status])
    gr.Examples([[ctx.example("synth_face_0.png"), ctx.example("synth_face_1.png")],
                 [ctx.example("synth_face_2.png"), ctx.example("synth_face_3.png")],
                 [ctx.example("photo_astronaut.png"), ctx.example("photo_coffee.png")]],
                [structure, texture], label="examples (click one, then Swap)")
