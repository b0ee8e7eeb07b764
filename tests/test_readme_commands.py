"""Every ``key=value`` override shown in the README's and docs/*.md's shell code blocks
parses against the config it goes with (the command's ``--config-file``, the SLURM script's
default config, or for ``--config-file ...`` the last concrete config of the same block), and
no flag follows the overrides of a command."""
import glob
import os
import re
import shlex

from mona_scale.engine.config import apply_overrides, load_config

import pytest
from omegaconf import OmegaConf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
DEFAULT_CONFIG = "configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py"
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
# commands whose trailing key=value arguments are config overrides
TOOLS = ("projects/train_net.py", "projects/demo.py", "mona_scale.export",
         "mona_scale.data.check", "slurm/")
TOOL_TOKEN = re.compile(r"(projects/(train_net|demo)\.py|mona_scale\.(export|data\.check)"
                        r"|slurm/\w+\.sh)$")


def shell_blocks(path):
    """The fenced code blocks of a markdown file other than ```python ones, as text."""
    blocks, current = [], None
    for line in open(path).read().splitlines():
        if line.startswith("```"):
            if current is None:
                current = [] if line[3:].strip() in ("", "bash", "sh", "shell") else False
            else:
                if current is not False:
                    blocks.append("\n".join(current))
                current = None
        elif current:
            current.append(line)
        elif current == []:
            current.append(line)
    return blocks


def commands(block):
    """Shell commands of a block: continuation lines joined, comments and prompts dropped."""
    joined = re.sub(r"\\\n", " ", block)
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#") or not any(t in line for t in TOOLS):
            continue  # (layout listings and tables share the plain ``` blocks)
        tokens = shlex.split(line, comments=True)
        if tokens:
            yield tokens


def slurm_default(script):
    text = open(os.path.join(ROOT, script)).read()
    return re.search(r"^CONFIG=(\S+)", text, re.M).group(1)


def documented_overrides():
    """(source, config, [overrides], tokens) for every tool command in the docs."""
    cases = []
    for doc in DOCS:
        for i, block in enumerate(shell_blocks(doc)):
            last_config = None
            for tokens in commands(block):
                line = " ".join(tokens)
                start = next((k for k, tok in enumerate(tokens) if TOOL_TOKEN.search(tok)),
                             None)
                if start is None:
                    continue
                args = tokens[start + 1:]
                config = None
                if "--config-file" in args:
                    config = args[args.index("--config-file") + 1]
                elif tokens[start].startswith("slurm/"):
                    config = slurm_default(tokens[start])
                if config and os.path.isfile(os.path.join(ROOT, config)):
                    last_config = config
                else:
                    config = last_config or DEFAULT_CONFIG
                overrides = [a for a in args if OVERRIDE.match(a)]
                cases.append((f"{os.path.basename(doc)} block {i}: {line}", config, overrides,
                              args))
    return cases


CASES = documented_overrides()


def test_the_docs_show_overrides():
    overrides = [o for _, _, ovs, _ in CASES for o in ovs]
    assert len(overrides) >= 20, overrides
    assert any("url_template=pipe:aws s3 cp" in o for o in overrides)


@pytest.mark.parametrize("source,config,overrides,args", CASES, ids=[c[0][:90] for c in CASES])
def test_documented_command_parses(source, config, overrides, args):
    cfg = load_config(os.path.join(ROOT, config))
    apply_overrides(cfg, overrides)  # raises on an unknown key or an unparsable value
    for override in overrides:
        key, _, value = override.partition("=")
        # the value arrives as written (a literal string), or parsed to a non-string
        got = OmegaConf.select(cfg, key)
        if isinstance(got, str):
            assert got == value, (source, key, got)
    first = next((k for k, a in enumerate(args) if OVERRIDE.match(a)), len(args))
    late_flags = [a for a in args[first:] if a.startswith("--")]
    assert not late_flags, f"{source}: flags {late_flags} after the key=value overrides"


def test_literal_fallback_is_only_for_string_keys():
    cfg = load_config(os.path.join(ROOT, "configs/quickstart/shapes_cls_mona.py"))
    with pytest.raises(ValueError, match="train.max_iter"):
        apply_overrides(cfg, ["train.max_iter={1 2"])
    apply_overrides(cfg, ["train.output_dir=out/{a b}"])
    assert cfg.train.output_dir == "out/{a b}"


def test_flag_after_overrides_says_to_put_flags_first():
    cfg = load_config(os.path.join(ROOT, "configs/quickstart/shapes_cls_mona.py"))
    with pytest.raises(ValueError, match="put flags first"):
        apply_overrides(cfg, ["train.max_iter=10", "--resume"])
