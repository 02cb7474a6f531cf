// A small SVG line chart: the training loss curve here, the benchmark and sweep charts
// later. Axes with round ticks, one polyline per series, a legend. No dependencies.
import Foundation

public struct LineChart {
    public struct Series {
        public let name: String, points: [(x: Double, y: Double)]
        /// A dot on every point: measurements and evaluations taken now and then, where the
        /// line between them is no data.
        public var markers: Bool
        /// A shaded band from `low` to `high` at each x (the spread of repeated runs), under the line.
        public var band: [(x: Double, low: Double, high: Double)]?
        public init(name: String, points: [(x: Double, y: Double)], markers: Bool = false,
                    band: [(x: Double, low: Double, high: Double)]? = nil) {
            self.name = name; self.points = points; self.markers = markers; self.band = band
        }
    }

    public var title: String, xLabel: String, yLabel: String
    public var series: [Series]
    public var logX: Bool
    /// The y axis starts at 0 (where sizes are compared: a gap of 6% then looks like 6%).
    public var zeroBasedY: Bool
    public var width = 720.0, height = 420.0
    /// The legend's words for the bands, where any series has one.
    public var bandLabel = "shaded: slowest to fastest run"

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logX: Bool = false, zeroBasedY: Bool = false) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series; self.logX = logX
        self.zeroBasedY = zeroBasedY
    }

    /// Colours for up to eight series (Okabe–Ito, readable by colour-blind readers).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

    /// Round tick values covering lo...hi: steps of 1, 2 or 5 times a power of ten.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 6) -> [Double] {
        guard hi > lo else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let p = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * p }.first { $0 >= raw } ?? 10 * p
        var t = (lo / step).rounded(.up) * step, out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(t); t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.3g", v) }
        return String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    public func svg() -> String {
        let bandPoints = series.flatMap { ($0.band ?? []).flatMap { [(x: $0.x, y: $0.low), (x: $0.x, y: $0.high)] } }
        let all = (series.flatMap(\.points) + bandPoints).filter { $0.y.isFinite && (!logX || $0.x > 0) }
        let fx: (Double) -> Double = logX ? { log10($0) } : { $0 }
        var (x0, x1) = (all.map { fx($0.x) }.min() ?? 0, all.map { fx($0.x) }.max() ?? 1)
        var (y0, y1) = (all.map(\.y).min() ?? 0, all.map(\.y).max() ?? 1)
        if x1 <= x0 { x0 -= 0.5; x1 += 0.5 }   // one x: in the middle
        if y1 <= y0 { y1 = y0 + 1 }
        if zeroBasedY { y0 = Swift.min(0, y0) }
        let pad = (y1 - y0) * 0.05
        if !(zeroBasedY && y0 == 0) { y0 -= pad }
        y1 += pad
        if !logX { x0 = min(x0, 0) }
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0)
        let pw = width - left - right, ph = height - top - bottom
        func px(_ x: Double) -> Double { left + (fx(x) - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }

        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(esc(title))</text>\n"
        for t in Self.ticks(y0, y1) {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Self.label(t))</text>\n"
        }
        // A log axis is labelled at the data's own x values (sequence lengths, contexts) when
        // there are few, else at the powers of ten.
        let xs = Array(Set(all.map(\.x))).sorted()
        let xTicks = logX ? (xs.count <= 12 ? xs : Self.ticks(x0, x1).filter { $0 == $0.rounded() }.map { pow(10, $0) })
            : Self.ticks(x0, x1)
        for t in xTicks {
            s += "<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" stroke=\"#f0f0f0\"/>\n"
            s += "<text x=\"\(f(px(t)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(Self.label(t))</text>\n"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 15))\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        s += "<text transform=\"translate(16,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>\n"
        for (i, one) in series.enumerated() {
            let colour = Self.palette[i % Self.palette.count]
            if let band = one.band?.filter({ $0.low.isFinite && $0.high.isFinite && (!logX || $0.x > 0) }), !band.isEmpty {
                // Up along the highs, back along the lows; one x alone gets a short bar.
                let outline = band.count == 1
                    ? [(px(band[0].x) - 4, py(band[0].high)), (px(band[0].x) + 4, py(band[0].high)),
                       (px(band[0].x) + 4, py(band[0].low)), (px(band[0].x) - 4, py(band[0].low))]
                    : band.map { (px($0.x), py($0.high)) } + band.reversed().map { (px($0.x), py($0.low)) }
                s += "<polygon fill=\"\(colour)\" fill-opacity=\"0.18\" stroke=\"none\" points=\"\(outline.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))\"/>\n"
            }
            let pts = one.points.filter { $0.y.isFinite && (!logX || $0.x > 0) }.map { "\(f(px($0.x))),\(f(py($0.y)))" }
            if pts.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\" points=\"\(pts.joined(separator: " "))\"/>\n"
            }
            if pts.count == 1 || one.markers {
                for p in pts {
                    let xy = p.split(separator: ",")
                    s += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(colour)\"/>\n"
                }
            }
            let ly = top + 14 + Double(i) * 16
            s += "<line x1=\"\(f(left + pw - 150))\" x2=\"\(f(left + pw - 130))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            if one.markers { s += "<circle cx=\"\(f(left + pw - 140))\" cy=\"\(f(ly - 4))\" r=\"3\" fill=\"\(colour)\"/>\n" }
            s += "<text x=\"\(f(left + pw - 125))\" y=\"\(f(ly))\">\(esc(one.name))</text>\n"
        }
        if series.contains(where: { !($0.band ?? []).isEmpty }) {
            let ly = top + 14 + Double(series.count) * 16
            s += "<rect x=\"\(f(left + pw - 150))\" y=\"\(f(ly - 9))\" width=\"20\" height=\"10\" fill=\"#888\" fill-opacity=\"0.3\"/>\n"
            s += "<text x=\"\(f(left + pw - 125))\" y=\"\(f(ly))\">\(esc(bandLabel))</text>\n"
        }
        return s + "</svg>\n"
    }
}
