// The inspector's movement track on a plain canvas (no map tiles: nothing is fetched from
// outside): the positions as a line in a local metric projection, their accuracy as faint
// circles, the registered site as a square, a scale bar. `fitTrack` is pure (Node tests).

import { t, formatDistance, formatDuration } from './i18n.js';

const R = 6_371_008.8;

/** Positions and site in metres east/north (a local projection) and in canvas pixels, fitting `w`×`h`. */
export function fitTrack(points, site, w, h, pad = 24) {
  const all = [...points.map((p) => [p.lat, p.lon]), ...(site ? [[site.lat, site.lon]] : [])];
  if (!all.length) return null;
  const lat0 = all.reduce((a, p) => a + p[0], 0) / all.length;
  const lon0 = all.reduce((a, p) => a + p[1], 0) / all.length;
  const k = Math.PI / 180;
  const xy = ([lat, lon]) => [(lon - lon0) * k * R * Math.cos(lat0 * k), (lat - lat0) * k * R];
  const pts = points.map((p) => ({ ...p, m: xy([p.lat, p.lon]) }));
  const s = site ? xy([site.lat, site.lon]) : null;
  const ms = [...pts.map((p) => p.m), ...(s ? [s] : [])];
  const [minX, maxX] = [Math.min(...ms.map((m) => m[0])), Math.max(...ms.map((m) => m[0]))];
  const [minY, maxY] = [Math.min(...ms.map((m) => m[1])), Math.max(...ms.map((m) => m[1]))];
  // At least 50 m across, so one point or a standing inspector is not magnified to nonsense.
  const span = Math.max(maxX - minX, maxY - minY, 50);
  const scale = Math.min(w - 2 * pad, h - 2 * pad) / span; // px per metre
  // The bounding box's middle at the canvas's middle.
  const cx = (minX + maxX) / 2;
  const cy = (minY + maxY) / 2;
  const toPx = (m) => [w / 2 + (m[0] - cx) * scale, h / 2 - (m[1] - cy) * scale];
  return { points: pts.map((p) => ({ ...p, px: toPx(p.m) })), site: s ? toPx(s) : null, scale };
}

function niceMetres(max) {
  const steps = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  return steps.filter((s) => s <= max).pop() || steps[0];
}

/** Draw the track response (`GET …/track`) into a canvas; answers the summary line. */
export function drawTrack(canvas, track) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600;
  const h = canvas.clientHeight || 360;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.fillStyle = '#f6f7f9';
  g.fillRect(0, 0, w, h);
  const fit = fitTrack(track.points || [], track.site, w, h);
  canvas.dataset.points = String((track.points || []).length);
  const claimed = (track.points || []).filter((p) => p.device_claimed);
  canvas.dataset.claimed = String(claimed.length);
  if (!fit) return t('review.track.none');
  g.strokeStyle = 'rgba(20, 50, 92, 0.15)';
  for (const p of fit.points) {
    g.beginPath();
    g.arc(p.px[0], p.px[1], Math.max(2, p.accuracy * fit.scale), 0, 2 * Math.PI);
    g.stroke();
  }
  g.strokeStyle = '#14325c';
  g.lineWidth = 2;
  g.beginPath();
  fit.points.forEach((p, i) => (i ? g.lineTo(p.px[0], p.px[1]) : g.moveTo(p.px[0], p.px[1])));
  g.stroke();
  // A position the phone queued offline is drawn hollow: its time is the device's claim.
  g.fillStyle = '#14325c';
  g.lineWidth = 1;
  for (const p of fit.points) {
    if (p.device_claimed) g.strokeRect(p.px[0] - 2.5, p.px[1] - 2.5, 5, 5);
    else g.fillRect(p.px[0] - 2, p.px[1] - 2, 4, 4);
  }
  if (fit.points.length) {
    const first = fit.points[0].px;
    const last = fit.points[fit.points.length - 1].px;
    g.fillStyle = '#1e7b34';
    g.beginPath(); g.arc(first[0], first[1], 5, 0, 2 * Math.PI); g.fill();
    g.fillStyle = '#b3261e';
    g.beginPath(); g.arc(last[0], last[1], 5, 0, 2 * Math.PI); g.fill();
  }
  if (fit.site) {
    g.strokeStyle = '#b3261e';
    g.lineWidth = 2;
    g.strokeRect(fit.site[0] - 7, fit.site[1] - 7, 14, 14);
    g.fillStyle = '#b3261e';
    g.font = '12px sans-serif';
    g.fillText(t('review.track.site'), fit.site[0] + 10, fit.site[1] + 4);
  }
  const bar = niceMetres((w / 3) / fit.scale);
  g.strokeStyle = '#333';
  g.lineWidth = 2;
  g.beginPath(); g.moveTo(12, h - 14); g.lineTo(12 + bar * fit.scale, h - 14); g.stroke();
  g.fillStyle = '#333';
  g.font = '12px sans-serif';
  g.fillText(formatDistance(bar), 12, h - 20);
  const s = track.summary || {};
  const span = s.first_ts != null && s.last_ts != null ? s.last_ts - s.first_ts : 0;
  const d = (m) => (m == null ? '—' : formatDistance(m));
  const line = t('review.track.summary', { n: s.points ?? 0, len: formatDistance(s.length_m || 0), span: formatDuration(span), dmin: d(s.min_site_distance_m), dmax: d(s.max_site_distance_m) });
  return claimed.length ? `${line}. ${claimedLine(claimed)}` : line;
}

/** What the reviewer must know of queued positions: how many, and the device clock's offset. */
export function claimedLine(claimed) {
  const offsets = claimed.map((p) => p.clock_offset_ms).filter(Number.isFinite);
  const worst = offsets.length ? Math.max(...offsets.map(Math.abs)) : null;
  return worst == null
    ? t('review.track.claimed', { n: claimed.length })
    : t('review.track.claimed.offset', { n: claimed.length, offset: formatDuration(worst) });
}
