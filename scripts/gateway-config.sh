# Sourced by the benchmark and load scripts: write_gateway_config DIR SIP_PORT CORE_PORT
# ADMIN_PORT EXPECTED_REGISTRATIONS [EXTRA_TOML] writes DIR/profiles/default.toml (reg-event on)
# and DIR/gw.toml: one UDP listener on loopback, the core next to it, the admin API, tables sized
# for EXPECTED_REGISTRATIONS, one trunk group for every source, then EXTRA_TOML (e.g. a [state]
# section) verbatim.
write_gateway_config() {
  local dir=$1 sip=$2 core=$3 admin=$4 expected=$5 extra=${6:-}
  mkdir -p "$dir/profiles"
  echo 'support_reg_event = true' > "$dir/profiles/default.toml"
  cat > "$dir/gw.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:$sip"]
identity = "sip:127.0.0.1:$sip"
core = "sip:127.0.0.1:$core"
[admin]
listen = "127.0.0.1:$admin"
[profiles]
dir = "$dir/profiles"
[limits]
expected_registrations = $expected
[[trunk_group]]
name = "default"
profile = "default"
sources = ["0.0.0.0/0"]
$extra
TOML
}
