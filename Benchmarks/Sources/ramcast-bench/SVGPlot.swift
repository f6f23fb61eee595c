import Foundation

/// A small hand-written SVG line chart: one or more panels sharing the x axis (say, throughput above
/// and p50 latency below), one line per series. No dependencies; opens in any browser.
struct SVGPlot {
    struct Series {
        var name: String
        /// (x, y) points; y may be NaN (no sample), which breaks the line.
        var points: [(x: Double, y: Double)]
    }

    struct Panel {
        var title: String
        var yLabel: String
        var series: [Series]
    }

    var title: String
    var subtitle: String
    var xLabel: String
    var panels: [Panel]

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    func render() -> String {
        let width = 760.0, left = 86.0, right = 170.0, top = 84.0, panelHeight = 210.0, gap = 70.0, bottom = 56.0
        let height = top + Double(panels.count) * panelHeight + Double(panels.count - 1) * gap + bottom
        let plotWidth = width - left - right
        let xs = panels.flatMap { $0.series.flatMap { $0.points.map(\.x) } }
        let xMin = xs.min() ?? 0, xMax = xs.max() ?? 1
        let logX = xMin > 0 && xMax / xMin >= 16
        func xPos(_ x: Double) -> Double {
            if xMax == xMin { return left + plotWidth / 2 }
            let t = logX ? (log2(x) - log2(xMin)) / (log2(xMax) - log2(xMin)) : (x - xMin) / (xMax - xMin)
            return left + 20 + t * (plotWidth - 40)
        }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="16" font-weight="bold">\(escape(title))</text>
            <text x="\(left)" y="44" fill="#555">\(escape(subtitleLines.0))</text>
            <text x="\(left)" y="60" fill="#555">\(escape(subtitleLines.1))</text>

            """
        let distinctX = Array(Set(xs)).sorted()
        for (pi, panel) in panels.enumerated() {
            let y0 = top + Double(pi) * (panelHeight + gap)
            let ys = panel.series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
            let (lo, hi, step) = Self.niceRange(0, ys.max() ?? 1)
            func yPos(_ y: Double) -> Double { y0 + panelHeight - (y - lo) / (hi - lo) * panelHeight }
            svg += "<text x=\"\(left)\" y=\"\(fmt(y0 - 8))\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
            // grid and y ticks
            var v = lo
            while v <= hi + step / 2 {
                let y = yPos(v)
                svg += "<line x1=\"\(left)\" y1=\"\(fmt(y))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(y))\" stroke=\"#e5e5e5\"/>\n"
                svg += "<text x=\"\(left - 8)\" y=\"\(fmt(y + 4))\" text-anchor=\"end\" fill=\"#333\">\(escape(Self.tick(v)))</text>\n"
                v += step
            }
            svg += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(panelHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
            svg += "<text transform=\"translate(\(fmt(left - 62)),\(fmt(y0 + panelHeight / 2))) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">\(escape(panel.yLabel))</text>\n"
            // x ticks at the measured values
            for x in distinctX {
                let px = xPos(x)
                svg += "<line x1=\"\(fmt(px))\" y1=\"\(fmt(y0 + panelHeight))\" x2=\"\(fmt(px))\" y2=\"\(fmt(y0 + panelHeight + 5))\" stroke=\"#999\"/>\n"
                svg += "<text x=\"\(fmt(px))\" y=\"\(fmt(y0 + panelHeight + 18))\" text-anchor=\"middle\" fill=\"#333\">\(escape(x == x.rounded() ? Int(x).grouped : x.trim))</text>\n"
            }
            // lines and points
            for (si, series) in panel.series.enumerated() {
                let color = Self.palette[si % Self.palette.count]
                var path = ""
                var pen = false
                for p in series.points.sorted(by: { $0.x < $1.x }) {
                    guard p.y.isFinite else { pen = false; continue }
                    path += "\(pen ? "L" : "M")\(fmt(xPos(p.x))),\(fmt(yPos(p.y))) "
                    pen = true
                }
                svg += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                for p in series.points where p.y.isFinite {
                    svg += "<circle cx=\"\(fmt(xPos(p.x)))\" cy=\"\(fmt(yPos(p.y)))\" r=\"3.5\" fill=\"\(color)\"><title>\(escape(series.name)): \(escape(p.y.short)) at \(escape(p.x.short))</title></circle>\n"
                }
                if pi == 0 {
                    let ly = top + 8 + Double(si) * 20
                    svg += "<line x1=\"\(fmt(left + plotWidth + 16))\" y1=\"\(fmt(ly))\" x2=\"\(fmt(left + plotWidth + 40))\" y2=\"\(fmt(ly))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                    svg += "<text x=\"\(fmt(left + plotWidth + 46))\" y=\"\(fmt(ly + 4))\">\(escape(series.name))</text>\n"
                }
            }
        }
        let axisY = top + Double(panels.count) * panelHeight + Double(panels.count - 1) * gap + 40
        svg += "<text x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(axisY))\" text-anchor=\"middle\" fill=\"#333\">\(escape(xLabel))\(logX ? " (log scale)" : "")</text>\n"
        svg += "</svg>\n"
        return svg
    }

    /// An axis from `lo` to a round number above `hi`, with 4-6 round steps (1, 2 or 5 × 10^k).
    static func niceRange(_ lo: Double, _ hi: Double) -> (Double, Double, Double) {
        let span = max(hi - lo, 1e-9)
        let raw = span / 5
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        return (lo, (hi / step).rounded(.up) * step == hi ? hi + step : (hi / step).rounded(.up) * step, step)
    }

    /// The subtitle on two lines, split at " · " when it is long.
    private var subtitleLines: (String, String) {
        guard subtitle.count > 90, let r = subtitle.range(of: " · ") else { return (subtitle, "") }
        return (String(subtitle[..<r.lowerBound]), String(subtitle[r.upperBound...]))
    }

    /// Axis labels: 0, 2.5, 40, 1.5 K, 300 K, 2 M.
    static func tick(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e6 { return (v / 1e6).trim + " M" }
        if a >= 1e3 { return (v / 1e3).trim + " K" }
        return v.trim
    }

    private func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
