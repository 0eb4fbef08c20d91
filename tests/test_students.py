import pytest
import torch

from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.session import run_onnx
from edgekd.metrics import cosine_rows
from edgekd.students import PRESETS, STUDENTS, build_student
from edgekd.students.base import trainable_parameters


def test_sea_table_1_students_have_the_published_parameter_counts():
    published = {"sea-student-0": 4.69e6, "sea-student-1": 1.17e6, "sea-student-2": 0.58e6, "sea-student-3": 0.40e6}
    for name, count in published.items():
        config, dim = PRESETS[name]
        params = trainable_parameters(build_student(config, dim))
        assert abs(params - count) / count < 0.01, (name, params)
    config, dim = PRESETS["sea-student-3"]
    assert trainable_parameters(build_student(config, dim)) == 398_306  # the published SEA-64 .h5's count


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_every_family_trains_and_exports_matching_pytorch(name, tmp_path):
    """Every registered family at its default sizes: gradients reach every parameter, and the ONNX export (front-end
    included) gives PyTorch's embedding."""
    torch.manual_seed(0)
    model = build_student(STUDENTS[name].config(), 64)
    audio = torch.randn(4, 8000) * 0.1
    loss = model(audio).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    path = export_onnx(model, audio[:1], tmp_path / f"{name}.onnx")
    with torch.no_grad():
        reference = model(audio).numpy()
    assert reference.shape == (4, 64)
    assert cosine_rows(run_onnx(path, audio.numpy()), reference).min() > 0.9999
