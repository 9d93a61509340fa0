#!/usr/bin/env python3
"""Generates the recorded-style geolocation traces used by tests/trust_traces.rs.

Deterministic (fixed seeds): rerunning it rewrites the same files. Positions follow a simple
but honest model of a phone's GNSS/fused fix: the error is a Gauss-Markov process (slow
wander with a time constant of a minute or two, several metres of spread) plus a little white
noise, accuracy drifts smoothly and is stored as a float32 the way Android reports it, fixes
arrive about once a second or two with 0.2-0.9 s of network latency, and the device clock is a
fraction of a second off the server's.

Run: python3 generate.py   (from this directory)
"""
import json
import math
import random
import struct

# 2026-11-23 09:00:00 UTC in microseconds.
T0_US = 1795424400 * 1_000_000
M_PER_DEG_LAT = 111_195.0

MOSCOW_SITE = (55.760120, 37.618560)      # an office building in central Moscow
SPB = (59.934280, 30.335099)              # Nevsky Prospekt, Saint Petersburg
NOVOSIBIRSK = (55.030199, 82.920430)      # Lenin Square, Novosibirsk
VLADIVOSTOK = (43.115540, 131.885485)     # central Vladivostok

ANDROID_UA = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/142.0.0.0 Mobile Safari/537.36")
ANDROID = {"timezone": "Europe/Moscow", "webdriver": False, "user_agent": ANDROID_UA,
           "platform": "Linux armv81", "hints": []}


def f32(x):
    """Android hands accuracy over as a Java float; Chrome widens it to a double."""
    return struct.unpack("f", struct.pack("f", x))[0]


def offset(origin, north_m, east_m):
    lat = origin[0] + north_m / M_PER_DEG_LAT
    lon = origin[1] + east_m / (M_PER_DEG_LAT * math.cos(math.radians(origin[0])))
    return lat, lon


class Gnss:
    """Gauss-Markov position error plus white noise, in metres north/east."""

    def __init__(self, rng, sigma, tau_s, white):
        self.rng, self.sigma, self.tau, self.white = rng, sigma, tau_s, white
        self.n = rng.gauss(0, sigma)
        self.e = rng.gauss(0, sigma)

    def step(self, dt):
        a = math.exp(-dt / self.tau)
        k = self.sigma * math.sqrt(1 - a * a)
        self.n = a * self.n + self.rng.gauss(0, k)
        self.e = a * self.e + self.rng.gauss(0, k)
        return self.n + self.rng.gauss(0, self.white), self.e + self.rng.gauss(0, self.white)


class Clock:
    def __init__(self, rng, device_offset_ms=-150):
        self.rng, self.device_offset_ms = rng, device_offset_ms

    def stamp(self, t_s):
        """(server_us, device_ts_ms) for a fix taken at t_s seconds after T0."""
        taken_us = T0_US + int(t_s * 1e6)
        latency_us = int(self.rng.uniform(0.2, 0.9) * 1e6)
        device_ms = (taken_us // 1000) + self.device_offset_ms
        return taken_us + latency_us, device_ms


def fix(pos, accuracy, device_ts, speed=None, heading=None, altitude=None):
    return {"lat": round(pos[0], 7), "lon": round(pos[1], 7), "accuracy": accuracy,
            "altitude": altitude, "altitude_accuracy": None if altitude is None else f32(6.0),
            "heading": heading, "speed": speed, "device_ts": device_ts}


def stationary(rng, clock, centre, t_start, duration, period, sigma, acc_lo, acc_hi):
    gnss = Gnss(rng, sigma=sigma, tau_s=90.0, white=0.6)
    events, t, acc = [], t_start, rng.uniform(acc_lo, acc_hi)
    while t < t_start + duration:
        n, e = gnss.step(period)
        acc = min(acc_hi, max(acc_lo, acc + rng.gauss(0, 0.4)))
        server_us, device_ms = clock.stamp(t)
        pos = offset(centre, n, e)
        events.append({"t_us": server_us,
                       "fix": fix(pos, f32(acc), device_ms, speed=f32(abs(rng.gauss(0, 0.15))),
                                  altitude=f32(150.0 + rng.gauss(0, 3)))})
        t += period * rng.uniform(0.9, 1.1)
    return events


def walking(rng, clock, centre, t_start, duration):
    """Walks the corridors of a 60 m x 30 m building: legs at ~1.3 m/s with pauses."""
    corners = [(0, 0), (0, 60), (30, 60), (30, 0)]
    gnss = Gnss(rng, sigma=4.0, tau_s=60.0, white=1.0)
    events, t, leg, pos_n, pos_e, pause = [], t_start, 0, 0.0, 0.0, 0.0
    acc = 8.0
    while t < t_start + duration:
        dt = rng.uniform(0.9, 2.1)
        if pause > 0:
            pause -= dt
            v = 0.0
        else:
            target = corners[(leg + 1) % 4]
            dn, de = target[0] - pos_n, target[1] - pos_e
            dist = math.hypot(dn, de)
            v = rng.uniform(1.1, 1.5)
            step = v * dt
            if step >= dist:
                pos_n, pos_e = target
                leg += 1
                pause = rng.choice([0, 0, 5, 20, 45])  # looking at something
            else:
                pos_n += dn / dist * step
                pos_e += de / dist * step
        # Near the windows (north wall) the sky is visible and accuracy improves.
        target_acc = 4.0 if pos_n < 5 else 12.0
        acc += (target_acc - acc) * 0.2 + rng.gauss(0, 0.5)
        acc = min(15.0, max(3.0, acc))
        n, e = gnss.step(dt)
        server_us, device_ms = clock.stamp(t)
        pos = offset(centre, pos_n + n - 15, pos_e + e - 30)
        events.append({"t_us": server_us,
                       "fix": fix(pos, f32(acc), device_ms, speed=f32(v) if v else f32(0.0),
                                  heading=None, altitude=f32(152.0 + rng.gauss(0, 4)))})
        t += dt
    return events


def write(name, description, site, client, events):
    trace = {"name": name, "description": description,
             "site": None if site is None else {"lat": site[0], "lon": site[1]},
             "client": client, "events": events}
    with open(f"{name}.json", "w") as f:
        json.dump(trace, f, indent=None, separators=(",", ":"))
        f.write("\n")


def main():
    rng = random.Random(20261123)
    clock = Clock(rng)

    write("walking", "A person walks the corridors of the inspected building in Moscow for ten "
          "minutes, pausing at rooms; GNSS indoors, accuracy 3-15 m with wander.",
          MOSCOW_SITE, ANDROID, walking(rng, clock, MOSCOW_SITE, 0, 600))

    write("table", "A phone lies on a table in the inspected office for ten minutes: no "
          "movement, only the receiver's slow wander and changing accuracy.",
          MOSCOW_SITE, ANDROID,
          stationary(rng, clock, MOSCOW_SITE, 0, 600, 2.0, sigma=2.5, acc_lo=9.0, acc_hi=20.0))

    moscow = stationary(rng, clock, MOSCOW_SITE, 0, 180, 2.0, sigma=2.5, acc_lo=6, acc_hi=14)
    novosibirsk = stationary(rng, clock, NOVOSIBIRSK, 240, 180, 2.0, sigma=2.5, acc_lo=6,
                             acc_hi=14)
    write("teleport", "At the Moscow site for three minutes, then, one minute later, the fixes "
          "come from Novosibirsk (2 800 km away), still with realistic jitter.",
          MOSCOW_SITE, ANDROID, moscow + novosibirsk)

    frozen = []
    for i in range(300):
        server_us, device_ms = clock.stamp(i * 1.0)
        frozen.append({"t_us": server_us,
                       "fix": {"lat": 55.7601, "lon": 37.6186, "accuracy": 5.0, "altitude": 0.0,
                               "altitude_accuracy": None, "heading": None, "speed": 0.0,
                               "device_ts": device_ms}})
    write("frozen", "A mock-location app holds the position at the site: identical coordinates "
          "and accuracy 5.0 m every second for five minutes.", MOSCOW_SITE, ANDROID, frozen)

    write("far_away", "A phone in Saint Petersburg joins an inspection of a Moscow site; the "
          "fixes are real (same time zone), only far from the site.", MOSCOW_SITE, ANDROID,
          stationary(rng, clock, SPB, 0, 300, 2.0, sigma=3.0, acc_lo=5.0, acc_hi=16.0))

    write("tz_mismatch", "The browser's time zone is Europe/Moscow but the fixes lie in "
          "Vladivostok (UTC+10); no site registered.", None, ANDROID,
          stationary(rng, clock, VLADIVOSTOK, 0, 300, 2.0, sigma=3.0, acc_lo=5.0, acc_hi=16.0))

    # Extra traces beyond the six of the issue.
    write("permission_denied", "The business denies the geolocation permission.", MOSCOW_SITE,
          ANDROID, [{"t_us": T0_US + 2_000_000, "no_fix": "permission_denied"}])

    automated = dict(ANDROID, webdriver=True)
    write("automation", "A browser driven by WebDriver reports a plausible position at the "
          "site.", MOSCOW_SITE, automated,
          stationary(rng, clock, MOSCOW_SITE, 0, 120, 2.0, sigma=2.5, acc_lo=6, acc_hi=14))

    skewed = Clock(rng, device_offset_ms=-10 * 60 * 1000)
    write("clock_skew", "A phone at the site whose clock is ten minutes slow.", MOSCOW_SITE,
          ANDROID,
          stationary(rng, skewed, MOSCOW_SITE, 0, 120, 2.0, sigma=2.5, acc_lo=6, acc_hi=14))

    desktop = {"timezone": "Europe/Moscow", "webdriver": False,
               "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                             "(KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
               "platform": "Win32", "hints": []}
    wifi = []
    wifi_pos = offset(MOSCOW_SITE, 12.0, -20.0)
    for i in range(60):
        server_us, device_ms = clock.stamp(i * 5.0)
        wifi.append({"t_us": server_us, "fix": fix(wifi_pos, 35.0, device_ms)})
    write("wifi_repeat", "A desktop browser on Wi-Fi positioning gets the same fix (35 m) every "
          "poll for five minutes; repetition is normal for network positioning.",
          MOSCOW_SITE, desktop, wifi)

    # Good walking fixes with bad samples between them; the verdict must stay trusted.
    good = walking(rng, clock, MOSCOW_SITE, 0, 120)
    mixed = []
    bad = [
        ({"lat": 95.0}, "geo_lat_out_of_range"),
        ({"lon": -200.0}, "geo_lon_out_of_range"),
        ({"accuracy": -3.0}, "geo_accuracy_invalid"),
        ({"accuracy": 5.0e7}, "geo_accuracy_invalid"),
        ({"device_ts_shift_ms": 3 * 86_400_000}, "geo_timestamp_in_future"),
        ({"device_ts_shift_ms": -90 * 86_400_000}, "geo_timestamp_too_old"),
    ]
    for i, ev in enumerate(good):
        mixed.append(ev)
        if i % 10 == 5:
            change, code = bad[(i // 10) % len(bad)]
            f = dict(ev["fix"])
            # A bad sample far away: if it were accepted it would be an impossible jump.
            f["lat"], f["lon"] = NOVOSIBIRSK
            for k, v in change.items():
                if k == "device_ts_shift_ms":
                    f["device_ts"] += v
                else:
                    f[k] = v
            mixed.append({"t_us": ev["t_us"] + 300_000, "fix": f, "expect_reject": code})
    write("bad_samples", "Walking at the site with malformed samples mixed in: out-of-range "
          "coordinates, absurd accuracy, timestamps days in the future or months old.",
          MOSCOW_SITE, ANDROID, mixed)


if __name__ == "__main__":
    main()
