import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, latentflow; heavy = [m for m in ('torch_fidelity', 'torchvision', 'matplotlib', "
        "'scipy', 'huggingface_hub') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
