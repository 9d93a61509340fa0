// Guiding the business's camera (issue 25), the part every page shares: frame coordinates
// (0..1 of the video frame, so they survive screen sizes and rotation) to and from a video
// element's pixels through its object-fit letterboxing and mirroring, and the pointer's
// marker drawn over a video.

/** How long a pointer is shown, ms (the server's camera::POINTER_SHOW_MS). */
export const POINTER_SHOW_MS = 6000;

/**
 * Where the frame lies inside the element: {left, top, width, height} in CSS pixels of the
 * element's box, for `object-fit` contain (letterboxed) or cover (cropped), and whether the
 * element is mirrored (a selfie preview drawn with scaleX(-1)).
 */
export function frameBox(video) {
  const r = video.getBoundingClientRect();
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  const cs = getComputedStyle(video);
  // A mirrored element: its transform's first coefficient is negative.
  const m = cs.transform && cs.transform !== 'none' ? cs.transform.match(/matrix\(([^,]+)/) : null;
  const mirrored = !!m && Number(m[1]) < 0;
  if (!vw || !vh || !r.width || !r.height) return { left: 0, top: 0, width: r.width, height: r.height, rect: r, mirrored };
  const fit = cs.objectFit || 'fill';
  let sx = r.width / vw;
  let sy = r.height / vh;
  if (fit === 'contain') { sx = Math.min(sx, sy); sy = sx; }
  if (fit === 'cover') { sx = Math.max(sx, sy); sy = sx; }
  const width = vw * sx;
  const height = vh * sy;
  return { left: (r.width - width) / 2, top: (r.height - height) / 2, width, height, rect: r, mirrored };
}

/** A frame point {x, y} (0..1) → pixels {x, y} from the element's top left corner. */
export function frameToElement(video, p) {
  const b = frameBox(video);
  let x = b.left + p.x * b.width;
  const y = b.top + p.y * b.height;
  if (b.mirrored) x = b.rect.width - x;
  return { x, y, visible: x >= 0 && y >= 0 && x <= b.rect.width && y <= b.rect.height };
}

/** Client (viewport) coordinates → a frame point, or null outside the frame (letterbox). */
export function clientToFrame(video, clientX, clientY) {
  const b = frameBox(video);
  let px = clientX - b.rect.left;
  const py = clientY - b.rect.top;
  if (b.mirrored) px = b.rect.width - px;
  const x = (px - b.left) / b.width;
  const y = (py - b.top) / b.height;
  if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) return null;
  const round = (v) => Math.round(v * 10000) / 10000;
  return { x: round(x), y: round(y) };
}

/** The layer over a video that pointers are drawn on (created once, beside the video). */
export function pointerLayer(video) {
  const parent = video.parentElement;
  let layer = parent.querySelector(':scope > .pointer-layer');
  if (!layer) {
    layer = document.createElement('div');
    layer.className = 'pointer-layer';
    layer.setAttribute('aria-live', 'polite');
    parent.append(layer);
  }
  return layer;
}

/**
 * Draw pointer `p` ({seq, at, from?, text?}) over `video`: a ring at the spot, an arrow from
 * where a drag began, the text beside it. Replaces what the layer showed.
 */
export function drawPointer(video, p) {
  const layer = pointerLayer(video);
  layer.replaceChildren();
  if (!p) return null;
  const at = frameToElement(video, p.at);
  const marker = document.createElement('div');
  marker.className = 'pointer-marker';
  if (!at.visible) {
    // The spot is in the part of the frame a cropping preview (object-fit: cover) does not
    // show: the marker waits at the nearest edge, so the phone's user turns towards it.
    const b = frameBox(video);
    at.x = Math.max(0, Math.min(at.x, b.rect.width));
    at.y = Math.max(0, Math.min(at.y, b.rect.height));
    marker.classList.add('pointer-offscreen');
  }
  marker.dataset.seq = String(p.seq ?? '');
  // CSSOM, not style attributes: a strict Content-Security-Policy allows it.
  marker.style.left = `${at.x}px`;
  marker.style.top = `${at.y}px`;
  layer.append(marker);
  if (p.from) {
    const from = frameToElement(video, p.from);
    const dx = at.x - from.x;
    const dy = at.y - from.y;
    const arrow = document.createElement('div');
    arrow.className = 'pointer-arrow';
    arrow.style.left = `${from.x}px`;
    arrow.style.top = `${from.y}px`;
    arrow.style.width = `${Math.hypot(dx, dy)}px`;
    arrow.style.transform = `rotate(${Math.atan2(dy, dx)}rad)`;
    layer.append(arrow);
  }
  if (p.text) {
    const label = document.createElement('div');
    label.className = 'pointer-text';
    label.textContent = p.text;
    label.style.top = `${at.y + 22}px`;
    layer.append(label);
    // Centred under the marker, but kept inside the preview.
    const w = label.offsetWidth;
    label.style.left = `${Math.max(4, Math.min(at.x - w / 2, layer.clientWidth - w - 4))}px`;
  }
  return marker;
}
