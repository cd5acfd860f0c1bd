"""Sample tab: StyleGAN2 images from seeds with truncation, and a style-mixing grid."""
from __future__ import annotations

from ganedit.app import work
from ganedit.app.context import AppContext, guarded, no_model_note

TITLE = "Sample"
KIND = "stylegan2"


def build(ctx: AppContext) -> None:
    import gradio as gr

    names = ctx.catalog.names(KIND)
    gr.Markdown("Random StyleGAN2 images (one per seed) and style mixing: cell (r, c) takes the chosen layers "
                "from column seed c and everything else from row seed r (as `ganedit sample` / `ganedit mix`).")
    if not names:
        gr.Markdown(no_model_note("StyleGAN2", "Train one with `ganedit train stylegan2` or convert an official "
                                  "checkpoint with `ganedit convert`."))
        return
    model = gr.Dropdown(names, value=names[0], label="model", elem_id="sample-model")
    info = gr.Markdown(ctx.catalog.info(names[0], KIND), elem_id="sample-info")
    model.change(lambda n: ctx.catalog.info(n, KIND), model, info)
    truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="truncation psi (1 = none, 0 = the average image)", elem_id="sample-truncation")
    with gr.Row():
        with gr.Column():
            seeds = gr.Textbox("0-7", label="seeds (e.g. 0-7 or 1,5,9)", elem_id="sample-seeds")
            run = gr.Button("Sample", variant="primary", elem_id="sample-run")
            grid = gr.Image(label="samples", type="numpy", format="png", interactive=False, height=256, elem_classes=["pixels"], elem_id="sample-result")
        with gr.Column():
            rows = gr.Textbox("1-3", label="row seeds", elem_id="mix-rows")
            cols = gr.Textbox("10-12", label="column seeds", elem_id="mix-cols")
            layers = gr.Dropdown(["coarse", "middle", "fine"], value="coarse", allow_custom_value=True,
                                 label="layers from the columns (coarse, middle, fine, or w+ rows A-B)", elem_id="mix-layers")
            mix_run = gr.Button("Mix", elem_id="mix-run")
            mixed = gr.Image(label="style mixing", type="numpy", format="png", interactive=False, height=256, elem_classes=["pixels"], elem_id="mix-result")
    status = gr.Textbox(label="status", interactive=False, elem_id="sample-status")

    def do_sample(name, s, psi):
        return work.sample(ctx.catalog, ctx.device, name, s, psi)

    def do_mix(name, r, c, lay, psi):
        return work.mix(ctx.catalog, ctx.device, name, r, c, lay, psi)

    run.click(guarded(do_sample), [model, seeds, truncation], [grid, status])
    mix_run.click(guarded(do_mix), [model, rows, cols, layers, truncation], [mixed, status])
