/**
 * Terminal QR codes for sharing `ss://` URIs. The only module that touches the npm `qrcode`
 * package, so swapping the renderer later means editing this file alone.
 * @module
 */

import QRCode from "npm:qrcode@1.5.4";

/** The one call we use from the untyped package. */
interface QrToString {
  toString(text: string, options: { type: "terminal" | "utf8"; small?: boolean }): Promise<string>;
}

const qrcode: QrToString = QRCode;

/** Options of {@linkcode renderQr}. */
export interface RenderQrOptions {
  /**
   * Paint with ANSI colours (black on white, so it scans on dark terminals too). Without colour
   * the code is plain block characters, dark modules drawn, for files and pipes. Default true.
   */
  color?: boolean;
}

/** Renders `text` as a QR code made of half-block characters, two modules per line. */
export function renderQr(text: string, options: RenderQrOptions = {}): Promise<string> {
  return options.color === false
    ? qrcode.toString(text, { type: "utf8" })
    : qrcode.toString(text, { type: "terminal", small: true });
}
