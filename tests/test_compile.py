"""train.compile: torch.compile of the adapters or the backbone gives the eager outputs."""
import copy
import logging

from mona_scale.engine.compile import compile_model, compile_targets
from mona_scale.modeling import build_swin

import pytest
import torch


def _tiny_swin(tuning, stages=2):
    torch.manual_seed(0)
    return build_swin("swin_t", tuning, embed_dim=16, depths=(1, 1)[:stages],
                      num_heads=(1, 2)[:stages], window_size=4, drop_path_rate=0.0)


def _outputs_and_grads(model, x):
    inp = x.clone().requires_grad_()
    feats = model(inp)
    sum((f * torch.linspace(-1, 1, f.numel()).view_as(f)).sum() for f in feats.values()
        ).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach() for k, v in feats.items()}, inp.grad, grads


# inductor (the default backend) on the adapters of one stage (its two Mona slots have the
# same shapes and reuse one set of kernels; a second stage's would be generated and built with
# the C++ compiler again, +40 % of the test's time with an empty inductor cache); the whole
# 2-stage backbone with aot_eager (dynamo's graph capture and AOT autograd
# without inductor's code generation: a CPU test in seconds)
@pytest.mark.slow
@pytest.mark.parametrize("target,backend,stages", [("adapters", "inductor", 1),
                                                   ("backbone", "aot_eager", 2)])
def test_compiled_model_matches_eager(target, backend, stages, caplog):
    eager = _tiny_swin({"method": "mona", "dropout": 0.0}, stages)
    with torch.no_grad():  # non-trivial adapters (gamma starts at 1e-6)
        for name, p in eager.named_parameters():
            if "gamma" in name:
                p.normal_(0, 0.5)
    compiled = compile_model(copy.deepcopy(eager), target, backend=backend)
    assert [n for n, _ in compiled.named_parameters()] == [
        n for n, _ in eager.named_parameters()]  # checkpoints keep their keys
    x = torch.randn(2, 3, 32, 40)
    with caplog.at_level(logging.INFO, logger="mona_scale.engine.compile"):
        for _ in range(2):  # the second call runs the compiled code without compiling
            feats_c, grad_c, params_c = _outputs_and_grads(compiled, x)
            compiled.zero_grad(set_to_none=True)
    feats_e, grad_e, params_e = _outputs_and_grads(eager, x)
    for key in feats_e:
        torch.testing.assert_close(feats_c[key], feats_e[key], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_c, grad_e, rtol=1e-4, atol=1e-5)
    assert params_c.keys() == params_e.keys() and params_e
    for name in params_e:
        torch.testing.assert_close(params_c[name], params_e[name], rtol=1e-4, atol=1e-5)
    if target == "adapters":
        assert "first forward (compilation included)" in caplog.text


def test_compile_targets_and_errors():
    mona = _tiny_swin("mona")
    assert len(compile_targets(mona, "adapters")) == 4  # 2 blocks x 2 Mona slots
    assert all(name.endswith(("my_module_1", "my_module_2"))
               for name, _ in compile_targets(mona, "adapters"))
    assert [m for _, m in compile_targets(mona, "backbone")] == [mona]
    assert compile_targets(mona, "") == [] and compile_model(mona, "") is mona
    with pytest.raises(ValueError, match="train.compile='model' is not one of"):
        compile_model(mona, "model")
    with pytest.raises(ValueError, match="train.compile='adapters'.*no adapter slot modules"):
        compile_model(_tiny_swin("fixed"), "adapters")
