"""`ganedit train e4e`: progressive stages by step (offsets beyond the stage get no update), the latent
discriminator with R1 and w pools, the delta regulariser, exact resume across a stage change, and the export."""
from __future__ import annotations

import json

import torch

import ganedit
from ganedit.methods.e4e import discriminated_rows
from ganedit.models.e4e import E4E, INFERENCE_STAGE
from ganedit.train.loop import train

FAST = {"workers": 0, "device": "cpu", "tensorboard": False, "quiet": True, "log_every": 1, "snapshot_every": 0,
        "checkpoint_every": 0, "data": "synthetic:8", "size": 32, "input_size": 32, "batch": 4, "units": [1, 1, 1, 1],
        "depths": [4, 6, 8, 10], "input_width": 4, "se_reduction": 2, "lpips_lambda": 0.0, "similarity_lambda": 0.0,
        "progressive_start": 2, "progressive_step_every": 1, "w_pool_size": 3, "d_reg_every": 2, "w_discriminator_lr": 1e-3}


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "loss/total" in line]


def test_stages_regularisers_and_export(tmp_path, decoder):
    run = tmp_path / "a"
    trainer = train("e4e", {**FAST, "decoder": decoder, "out": str(run), "steps": 5})
    rows = _rows(run)
    assert [r["e4e/stage"] for r in rows] == [0, 0, 1, 2, 3]  # stage k from progressive_start + (k-1) * every
    assert all("loss/D" in r and "loss/adv" in r for r in rows)
    assert [("loss/R1" in r) for r in rows] == [True, False, True, False, True]  # every d_reg_every steps
    assert "loss/delta" not in rows[0] and rows[3]["loss/delta"] > 0  # offsets are regularised once active
    model = ganedit.load(run / "model")
    assert isinstance(model, E4E) and model.encoder.progressive_stage == 18 and hasattr(model, "latent_discriminator")
    assert len(trainer.method.real_pool.images) == 3  # the pool filled up to its size


def test_offsets_beyond_the_stage_are_not_trained(tmp_path, decoder):
    one = train("e4e", {**FAST, "decoder": decoder, "out": str(tmp_path / "one"), "steps": 1}).method.nets["psp"]
    two = train("e4e", {**FAST, "decoder": decoder, "out": str(tmp_path / "two"), "steps": 2}).method.nets["psp"]
    state1, state2 = one.encoder.state_dict(), two.encoder.state_dict()
    for k in state1:  # both runs stayed in stage 0: only w0's map2style and the backbone moved
        if k.startswith(("styles.0.", "body.", "input_layer.")) or "num_batches" in k:
            continue
        assert torch.equal(state1[k], state2[k]), k
    assert not torch.equal(state1["styles.0.linear.weight"], state2["styles.0.linear.weight"])
    d1, d2 = one.latent_discriminator.state_dict(), two.latent_discriminator.state_dict()
    assert not torch.equal(d1["mlp.0.weight"], d2["mlp.0.weight"])


def test_resume_across_a_stage_change_is_exact(tmp_path, decoder):
    cfg = {**FAST, "decoder": decoder, "checkpoint_every": 3}
    straight = train("e4e", {**cfg, "out": str(tmp_path / "a"), "steps": 5})
    train("e4e", {**cfg, "out": str(tmp_path / "b"), "steps": 3})
    resumed = train("e4e", {**cfg, "out": str(tmp_path / "b"), "steps": 5}, resume="auto")
    assert resumed.step == 5
    for (k, a), b in zip(straight.method.nets["psp"].state_dict().items(), resumed.method.nets["psp"].state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(torch.cat(straight.method.fake_pool.images), torch.cat(resumed.method.fake_pool.images))


def test_discriminated_rows_cover_w0_and_the_active_offsets():
    wplus = torch.arange(3 * 6, dtype=torch.float32).reshape(3, 6, 1).expand(3, 6, 4).clone()  # row r of sample j = 6j + r
    draws = torch.tensor([0.0, 0.5, 0.999])
    assert discriminated_rows(wplus, 0, draws)[:, 0].tolist() == [0, 6, 12]  # stage 0: only w0 exists
    assert discriminated_rows(wplus, 2, draws)[:, 0].tolist() == [0, 7, 14]  # rows 0..2 with equal chances
    assert discriminated_rows(wplus, INFERENCE_STAGE, draws)[:, 0].tolist() == [0, 9, 17]  # every row


def test_the_discriminator_trains_on_offset_rows_too(tmp_path, decoder):
    """The official pool stores one random active row per sample; trained on w0 alone the discriminator never sees
    w0 + delta_i, which the encoder's adversarial loss then pushes anywhere (issue 14: e4e's offsets left W)."""
    cfg = {**FAST, "decoder": decoder, "out": str(tmp_path / "r"), "steps": 1, "data": "synthetic:4", "optim": "adam",
           "lr": 1e-12, "progressive_start": 0, "progressive_step_every": 0, "w_pool_size": 4}  # all offsets active, E still
    method = train("e4e", cfg).method
    model = method.nets["psp"].train()
    data = method.build_data()
    x = torch.stack([data[i]["input"] for i in range(len(data))])  # the one batch (BatchNorm: order does not matter)
    with torch.no_grad():
        wplus = model.encode(model.to_encoder_input(x))
    rows = []
    for fake in torch.cat(method.fake_pool.images):
        hits = [(j, r) for j in range(wplus.shape[0]) for r in range(wplus.shape[1]) if torch.allclose(wplus[j, r], fake, atol=1e-5)]
        assert hits, "a pooled code is no row of the encoded batch"
        rows.append(hits[0][1])
    assert len(rows) == 4 and max(rows) > 0, rows


def test_an_l2_only_loss_warns_about_the_discriminator_weight(tmp_path, decoder, caplog):
    """The official discriminator weight was balanced against L2 + LPIPS + similarity: a run with L2 alone says so
    (and names the weight); a run without the discriminator has nothing to warn about."""
    import logging

    with caplog.at_level(logging.WARNING, logger="ganedit"):
        train("e4e", {**FAST, "decoder": decoder, "out": str(tmp_path / "a"), "steps": 1, "w_discriminator_lambda": 0.1})
    said = [r.getMessage() for r in caplog.records if "reconstruction loss is L2 alone" in r.getMessage()]
    assert len(said) == 1 and "weight 0.1 " in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ganedit"):
        train("e4e", {**FAST, "decoder": decoder, "out": str(tmp_path / "b"), "steps": 1, "w_discriminator_lambda": 0.0})
    assert not any("reconstruction loss is L2 alone" in r.getMessage() for r in caplog.records)


def test_a_run_from_random_weights_points_to_init_encoder(tmp_path, decoder, caplog):
    """Without a pretrained backbone the log names the stand-in (a pSp / e4e encoder of the same domain); a run
    that has one says nothing."""
    import logging

    hint = "no init_encoder, so a new run starts the encoder from random weights"
    with caplog.at_level(logging.INFO, logger="ganedit"):
        train("e4e", {**FAST, "decoder": decoder, "out": str(tmp_path / "a"), "steps": 1})
    said = [r.getMessage() for r in caplog.records if hint in r.getMessage()]
    assert len(said) == 1 and "--set init_encoder=PATH" in said[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ganedit"):
        train("e4e", {**FAST, "decoder": decoder, "out": str(tmp_path / "b"), "steps": 1,
                      "init_encoder": str(tmp_path / "a" / "model")})
    assert any("encoder warm-started from" in r.getMessage() for r in caplog.records)
    assert not any(hint in r.getMessage() for r in caplog.records)


def test_restyle_e4e_trains_every_refinement_step_with_one_update(tmp_path, decoder):
    """ReStyle-e4e as the official Coach: each refinement step's loss (reconstruction, the discriminator's verdict,
    the delta regulariser) is back-propagated, one optimiser step per batch; the discriminator reads the first step's
    codes; the exported model refines as many steps as it trained with."""
    run = tmp_path / "rs"
    trainer = train("e4e", {**FAST, "decoder": decoder, "out": str(run), "steps": 4, "restyle": True, "restyle_iters": 2,
                            "optim": "adam"})
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "loss/total_iter1" in line]
    assert len(rows) == 4
    assert all("loss/adv_iter0" in r and "loss/adv_iter1" in r and "loss/D" in r for r in rows)
    assert "loss/delta_iter1" not in rows[0] and rows[3]["loss/delta_iter1"] > 0  # stage 2 at step 3
    assert rows[3]["loss/total_iter1"] > rows[3]["loss/l2_iter1"]  # the latent terms count in each step's loss
    opt = trainer.method.opts["E"]
    steps = [int(opt.state[p]["step"]) for group in opt.param_groups for p in group["params"] if p in opt.state]
    assert max(steps) == 4  # the backbone: once per batch (offsets unlocked later by the stages: fewer)
    model = ganedit.load(run / "model")
    assert isinstance(model, E4E) and model.restyle and model.restyle_iters == 2 and model.encoder.input_nc == 6
