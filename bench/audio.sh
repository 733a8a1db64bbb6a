#!/usr/bin/env bash
# Audio benchmark (a), side by side in one run (see bench/README.md): the whole ladder (Opus
# 160k/96k, AAC 256k/128k M4A fast-start, MP3 320k/128k), the EBU R128 scan and the waveform of a
# 10-minute stereo FLAC in one decode (bench/audio_bench.cpp, single-threaded like a transcode
# worker) vs the ffmpeg CLI run once per rendition with the same settings plus once for ebur128,
# one after another. Rounds alternate; medians of wall-clock seconds and the ratio.
# (b) The MP3 320k rendition of that track streamed by a bench node (bench_node.sh) to 64
# connections asking random 256 KB ranges (wrk + a Lua script) vs nginx (1 worker, sendfile)
# serving the same file with the same requests; medians of requests/s and the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
load_cluster
bin=$CHORUS_BUILD/bench/audio_bench
[ -x "$bin" ] || die "audio_bench is not built (./chorus up builds it)"
rounds=${BENCH_ROUNDS:-3}
# BENCH_AUDIO_PARTS=b runs only the streaming half (a quicker loop while tuning the edge).
parts=${BENCH_AUDIO_PARTS:-ab}
minutes=${BENCH_AUDIO_MINUTES:-10}
tmp=$(mktemp -d)
chmod 755 "$tmp"  # nginx workers run as an unprivileged user when started as root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Music-like input: two detuned tones over pink noise, stereo 44.1 kHz.
ffmpeg -v error -y -f lavfi -i "sine=f=220:r=44100:d=$((minutes * 60))" \
  -f lavfi -i "sine=f=331:r=44100:d=$((minutes * 60))" \
  -f lavfi -i "anoisesrc=c=pink:r=44100:a=0.05:d=$((minutes * 60))" \
  -filter_complex "[0][1][2]amix=inputs=3,aformat=channel_layouts=stereo" \
  -c:a flac "$tmp/in.flac"

now() { date +%s.%N; }
ours() {
  rm -rf "$tmp/ours"
  local s; s=$(now)
  "$bin" "$tmp/in.flac" "$tmp/ours" >/dev/null
  echo "$(now) - $s" | bc -l
}
cli() {
  rm -rf "$tmp/cli"; mkdir -p "$tmp/cli"
  local s; s=$(now)
  local f=(ffmpeg -v error -y -threads 1 -i "$tmp/in.flac" -vn)
  "${f[@]}" -c:a libopus -b:a 160k -ar 48000 "$tmp/cli/opus-high.opus"
  "${f[@]}" -c:a libopus -b:a 96k -ar 48000 "$tmp/cli/opus-low.opus"
  "${f[@]}" -c:a aac -b:a 256k -movflags +faststart -f ipod "$tmp/cli/aac-high.m4a"
  "${f[@]}" -c:a aac -b:a 128k -movflags +faststart -f ipod "$tmp/cli/aac-low.m4a"
  "${f[@]}" -c:a libmp3lame -b:a 320k "$tmp/cli/mp3-high.mp3"
  "${f[@]}" -c:a libmp3lame -b:a 128k "$tmp/cli/mp3-low.mp3"
  ffmpeg -v info -nostats -threads 1 -i "$tmp/in.flac" -af ebur128=peak=true -f null - 2>/dev/null
  echo "$(now) - $s" | bc -l
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$tmp/o"; : >"$tmp/p"
if [[ $parts == *a* ]]; then
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then ours >>"$tmp/o"; cli >>"$tmp/p"; else cli >>"$tmp/p"; ours >>"$tmp/o"; fi
    printf '    round %d: chorus %.2f s, ffmpeg CLI x7 %.2f s\n' "$r" "$(tail -n1 "$tmp/o")" "$(tail -n1 "$tmp/p")"
  done
  o=$(median <"$tmp/o"); p=$(median <"$tmp/p")
  printf '%-44s %10s %12s %8s\n' "(a) ladder + R128 + waveform, ${minutes} min FLAC" "chorus" "ffmpeg CLI" "speedup"
  printf '%-44s %10.2f %12.2f %8.2f\n' "  median wall seconds ($rounds rounds)" "$o" "$p" "$(echo "$p / $o" | bc -l)"
fi
[[ $parts == *b* ]] || exit 0

# ---- (b) Range streaming ----
. "$here/bench_node.sh"
read -r _ token < <(bench_member "audio$RANDOM$RANDOM" artist)
id=$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: audio/flac' \
  -H 'X-Track-Title: Bench' --data-binary @"$tmp/in.flac" "$bench_base/v1/tracks" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ready() { curl -fsS "$bench_base/v1/tracks/$id" | grep -q '"status":"ready"'; }
wait_for 900 ready || die "the bench track did not become ready"
stream="$bench_base/v1/tracks/$id/stream?format=mp3&quality=high"
mkdir -p "$tmp/www" "$tmp/logs"
curl -fsS "$stream" -o "$tmp/www/track.mp3"
size=$(stat -c %s "$tmp/www/track.mp3")
bench_nginx "$tmp/www" audio/mpeg
nport=$nginx_port
wait_for 10 curl -fsS -o /dev/null "http://127.0.0.1:$nport/track.mp3" || die "nginx did not start"
cat >"$tmp/ranges.lua" <<'LUA'
local size
init = function(args) size = tonumber(args[1]); math.randomseed(os.time()) end
request = function()
  local first = math.random(0, size - 262144)
  return wrk.format(nil, nil, { Range = "bytes=" .. first .. "-" .. (first + 262143) })
end
LUA
range_rps() {
  wrk -t2 -c64 -d"${BENCH_DURATION:-5s}" -s "$tmp/ranges.lua" "$1" -- "$size" |
    awk '/Requests\/sec:/ { printf "%.0f\n", $2 }'
}
: >"$tmp/ro"; : >"$tmp/rp"
for r in $(seq "$rounds"); do
  range_rps "$stream" >>"$tmp/ro"
  range_rps "http://127.0.0.1:$nport/track.mp3" >>"$tmp/rp"
  printf '    round %d: chorus %s ranges/s, nginx %s ranges/s\n' "$r" "$(tail -n1 "$tmp/ro")" "$(tail -n1 "$tmp/rp")"
done
o=$(median <"$tmp/ro"); p=$(median <"$tmp/rp")
printf '%-44s %10s %12s %8s\n' "(b) random 256 KB ranges of a $((size / 1048576)) MB MP3" "chorus" "nginx(1w)" "ratio"
printf '%-44s %10.0f %12.0f %8.2f\n' "  median ranges/s, 64 connections" "$o" "$p" "$(echo "$o / $p" | bc -l)"
