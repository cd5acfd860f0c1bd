"""Swap tab: Swapping Autoencoder structure/texture swap with a texture-strength slider, and region edits
(blend or copy the texture image's structure inside a region into the structure image). The region is brushed
on the structure image (a gr.ImageEditor showing it as the model reads it) or given as a rectangle."""
from __future__ import annotations

from pathlib import Path

from ganedit.app import work
from ganedit.app.context import AppContext, guarded, no_model_note
from ganedit.app.masks import editor_mask, editor_value, mask_image
from ganedit.app.uploads import upload_path
from ganedit.errors import ConfigError

TITLE = "Swap"
KIND = "swapae"
BRUSH_COLOR = "#ff3c3c"
BRUSH_RADIUS = 4  # pixels of the 64 px image the model reads: a few code cells per stroke


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
            structure_seen = gr.ImageEditor(
                label="structure as the model sees it: brush the region here", type="numpy",
                image_mode="RGBA", sources=(), transforms=(), layers=False, height=300, elem_id="swap-structure-seen",
                brush=gr.Brush(default_size=BRUSH_RADIUS, colors=[BRUSH_COLOR], color_mode="fixed"),
                eraser=gr.Eraser(default_size=BRUSH_RADIUS))
            structure_note = gr.Markdown("", elem_id="swap-structure-note")
        with gr.Column():
            texture = gr.File(label="texture image", file_types=["image"], elem_id="swap-texture")
            texture_seen = gr.Image(label="texture, as the model sees it", interactive=False, height=128, elem_classes=["pixels"],
                                    elem_id="swap-texture-seen")
            with gr.Row():
                result = gr.Image(label="result", type="numpy", format="png", interactive=False, height=200,
                                  elem_classes=["pixels"], elem_id="swap-result")
                region_used = gr.Image(label="region used (white)", type="numpy", format="png", interactive=False, height=200,
                                       elem_classes=["pixels"], elem_id="swap-region-used")
    alpha = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="texture strength (0 = reconstruct the structure image, 1 = full swap)", elem_id="swap-alpha")
    mode = gr.Radio(["swap", "blend", "copy"], value="swap", label="mode: whole-image swap, or a region edit that "
                    "blends / copies the texture image's structure inside the region", elem_id="swap-mode")
    source = gr.Radio(["brush", "rectangle"], value="brush", label="region: the mask brushed on the structure image, "
                      "or the rectangle below", elem_id="swap-region-source")
    with gr.Row():
        boxes = [gr.Slider(0.0, 1.0, value=v, step=0.05, label=label) for v, label in
                 ((0.25, "region x0"), (0.25, "region y0"), (0.75, "region x1"), (0.75, "region y1"))]
    run = gr.Button("Swap", variant="primary", elem_id="swap-run")
    status = gr.Textbox(label="status", interactive=False, elem_id="swap-status")

    def handler(name, a, b, al, md, src, drawn, x0, y0, x1, y1):
        mask = None
        if md != "swap" and src == "brush":
            size = work.image_size(work.load(ctx.catalog, name, KIND, ctx.device))
            mask = editor_mask(drawn, size)
            if mask is None:
                raise ConfigError("no region brushed: brush it on the structure image (or choose the rectangle)")
        image = work.swap(ctx.catalog, ctx.device, name, a, b, al, md, (x0, y0, x1, y1), mask=mask)
        return image, None if mask is None else mask_image(mask)

    def preview(name, upload):
        if upload is None:
            return None, ""
        seen = work.preview(ctx.catalog, ctx.device, name, KIND, upload)
        return editor_value(seen), f"`{Path(upload_path(upload, 'structure image')).name}` read as {seen.shape[1]} x {seen.shape[0]} px"

    def texture_preview(name, upload):
        return None if upload is None else work.preview(ctx.catalog, ctx.device, name, KIND, upload)

    structure.change(guarded(preview, 2), [model, structure], [structure_seen, structure_note, status])
    texture.change(guarded(texture_preview), [model, texture], [texture_seen, status])
    run.click(guarded(handler, 2), [model, structure, texture, alpha, mode, source, structure_seen, *boxes],
              [result, region_used, status])
    gr.Examples([[ctx.example("synth_face_0.png"), ctx.example("synth_face_1.png")],
                 [ctx.example("synth_face_2.png"), ctx.example("synth_face_3.png")],
                 [ctx.example("photo_astronaut.png"), ctx.example("photo_coffee.png")]],
                [structure, texture], label="examples (click one, then Swap)")
