// The inspector's movement track on a plain canvas (nothing is fetched from outside unless an
// administrator configured a map tile server, `[review] tile_url`: then its Web Mercator tiles
// are drawn underneath): the positions as a line in a local metric projection, their accuracy
// as faint circles, the registered site as a square, a scale bar. `fitTrack` and `tilesFor`
// are pure (Node tests).

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
  // Canvas pixels back to degrees (for the map tiles under the track).
  const toLatLon = ([px, py]) => {
    const mx = (px - w / 2) / scale + cx;
    const my = -(py - h / 2) / scale + cy;
    return [lat0 + my / (k * R), lon0 + mx / (k * R * Math.cos(lat0 * k))];
  };
  const project = (lat, lon) => toPx(xy([lat, lon]));
  return { points: pts.map((p) => ({ ...p, px: toPx(p.m) })), site: s ? toPx(s) : null, scale, lat0, project, toLatLon };
}

/** Most tiles one track view loads. */
export const MAX_TILES = 64;

/**
 * The Web Mercator tiles covering a fitted `w`×`h` canvas, at the zoom whose pixels are
 * closest to the canvas's, each with the canvas rectangle it fills: `[{z, x, y, rect}]`.
 */
export function tilesFor(fit, w, h) {
  const k = Math.PI / 180;
  // Metres per tile pixel at zoom z: 156543.03 · cos(lat) / 2^z; the canvas has 1/scale.
  const z = Math.max(0, Math.min(19, Math.round(Math.log2(156543.03392 * Math.cos(fit.lat0 * k) * fit.scale))));
  const n = 2 ** z;
  const tx = (lon) => Math.floor(((lon + 180) / 360) * n);
  const ty = (lat) => Math.floor(((1 - Math.log(Math.tan(lat * k) + 1 / Math.cos(lat * k)) / Math.PI) / 2) * n);
  const lonOf = (x) => (x / n) * 360 - 180;
  const latOf = (y) => Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) / k;
  const [north, west] = fit.toLatLon([0, 0]);
  const [south, east] = fit.toLatLon([w, h]);
  const out = [];
  for (let y = Math.max(0, ty(north)); y <= Math.min(n - 1, ty(south)); y += 1) {
    for (let x = tx(west); x <= tx(east); x += 1) {
      const [x0, y0] = fit.project(latOf(y), lonOf(x));
      const [x1, y1] = fit.project(latOf(y + 1), lonOf(x + 1));
      out.push({ z, x: ((x % n) + n) % n, y, rect: [x0, y0, x1 - x0, y1 - y0] });
      if (out.length >= MAX_TILES) return out;
    }
  }
  return out;
}

/** A tile's address from the administrator's template. */
export function tileUrl(template, { z, x, y }) {
  return template.replaceAll('{z}', String(z)).replaceAll('{x}', String(x)).replaceAll('{y}', String(y));
}

function niceMetres(max) {
  const steps = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  return steps.filter((s) => s <= max).pop() || steps[0];
}

/** Paints the background (and the tiles loaded so far), then the track over it. */
function paint(g, fit, track, w, h, tiles) {
  g.fillStyle = '#f6f7f9';
  g.fillRect(0, 0, w, h);
  if (!fit) return;
  for (const { img, rect } of tiles) g.drawImage(img, rect[0], rect[1], rect[2], rect[3]);
  g.strokeStyle = 'rgba(20, 50, 92, 0.15)';
  g.lineWidth = 1;
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
  const attribution = track.tiles?.attribution;
  if (track.tiles?.url && attribution) {
    g.font = '10px sans-serif';
    g.textAlign = 'right';
    g.fillText(attribution, w - 6, h - 6);
    g.textAlign = 'left';
  }
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
  const fit = fitTrack(track.points || [], track.site, w, h);
  canvas.dataset.points = String((track.points || []).length);
  const claimed = (track.points || []).filter((p) => p.device_claimed);
  canvas.dataset.claimed = String(claimed.length);
  paint(g, fit, track, w, h, []);
  if (!fit) return t('review.track.none');
  if (track.tiles?.url) {
    // The tiles come later; the track is repainted over them as each arrives.
    const tiles = tilesFor(fit, w, h);
    const loaded = [];
    canvas.dataset.tiles = '0';
    for (const tile of tiles) {
      const img = new Image();
      img.onload = () => {
        loaded.push({ img, rect: tile.rect });
        canvas.dataset.tiles = String(loaded.length);
        paint(g, fit, track, w, h, loaded);
      };
      img.src = tileUrl(track.tiles.url, tile);
    }
  }
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
