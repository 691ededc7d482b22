# Sourced by the recipes: stage selection and timing. Needs $stage, $stop_stage and $exp set by the recipe.

run_stage() {  # run_stage N NAME COMMAND...: run a numbered stage if selected, and record its seconds
  local n=$1 name=$2; shift 2
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    echo "=== stage $n: $name ==="
    local start=$SECONDS
    "$@"
    python -m asr.cli.results stage --file "$exp/stage_seconds.json" --name "$name" --seconds $((SECONDS - start))
  fi
}
