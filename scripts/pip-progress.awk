# Turns pip's output (read on stdin) into a few progress lines for scripts/bootstrap.sh:
# packages resolved so far, then the install step, then the result. pip's full output
# goes to .venv/pip-install.log; this only tells a person that it is moving.
function say(text) { printf "  [%3ds] %s\n", systime() - started, text; fflush() }
BEGIN { started = systime() }
/Installing build dependencies: started/ { say("preparing the project's build (pip fetches its build tools)") }
/^Collecting / { n++; if (n == 1 || n % 20 == 0) say(sprintf("resolving dependencies: %d packages so far (%s)", n, $2)) }
/^Building wheels? for / { say("building " $NF) }
/^Installing collected packages: / {
  count = split(substr($0, length("Installing collected packages: ") + 1), names, ", ")
  say(sprintf("resolved %d packages; installing %d (the longest step)", n, count))
}
/^Successfully installed / { say(sprintf("installed %d packages", NF - 2)) }
/^ERROR: / { say($0) }
