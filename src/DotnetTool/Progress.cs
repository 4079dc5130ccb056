using System.Diagnostics;
using System.Globalization;
using Quantize.Core.Quantization;

namespace Quantize.Tool;

/// <summary>How progress is shown on stderr.</summary>
internal enum ProgressStyle
{
    /// <summary>Nothing (<c>--quiet</c>).</summary>
    None,

    /// <summary>Plain lines (one per stage, and a few per long stage): for logs, redirected output and CI.</summary>
    Lines,

    /// <summary>A bar redrawn in place with a carriage return, with the elapsed time: for an interactive terminal.</summary>
    Bar,
}

/// <summary>
/// Shows <see cref="QuantizationProgress"/> reports on stderr: a bar when stderr is an interactive terminal, plain lines
/// (no control characters) when it is redirected or <c>CI</c> is set, nothing when quiet.
/// </summary>
internal sealed class ConsoleProgress : IProgress<QuantizationProgress>, IDisposable
{
    private const int BarWidth = 24;
    private readonly TextWriter _writer;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private readonly Timer? _ticker;
    private QuantizationProgress? _current;
    private int _lastTenth = -1;
    private int _drawnLength;
    private bool _finished;

    public ConsoleProgress(TextWriter writer, ProgressStyle style)
    {
        _writer = writer;
        Style = style;
        // The bar's clock keeps moving during long stages that report nothing.
        if (style == ProgressStyle.Bar) _ticker = new Timer(_ => Redraw(), null, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(250));
    }

    public ProgressStyle Style { get; }

    /// <summary>The style for <paramref name="stderr"/>: a bar only for the process's own, interactive stderr outside CI.</summary>
    public static ProgressStyle StyleFor(TextWriter stderr, bool quiet)
    {
        if (quiet) return ProgressStyle.None;
        bool terminal = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected
            && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"))
            && Environment.GetEnvironmentVariable("TERM") is not "dumb";
        return terminal ? ProgressStyle.Bar : ProgressStyle.Lines;
    }

    public void Report(QuantizationProgress value)
    {
        lock (_lock)
        {
            if (_finished || Style == ProgressStyle.None) return;
            bool newStage = _current?.Stage != value.Stage;
            _current = value;
            if (Style == ProgressStyle.Bar)
            {
                Draw(value);
                return;
            }
            // Lines: the stage once, then at each tenth of a counted stage (and at its end); with no total known,
            // at 1, 2, 5, 10, 20, 50, ... units, so a log stays short however long the stage.
            int tenth = value.Total is > 0 and var total ? Math.Min(10, value.Completed * 10 / total) : -1;
            if (newStage || tenth > _lastTenth || (value.Total is not > 0 && IsOneTwoFive(value.Completed)))
            {
                _lastTenth = tenth;
                _writer.WriteLine($"[{Elapsed()}] {value.Stage}{Count(value)}");
                _writer.Flush();
            }
        }
    }

    /// <summary>Clears the bar (so what follows starts on a clean line) and stops reporting.</summary>
    public void Dispose()
    {
        _ticker?.Dispose();
        lock (_lock)
        {
            if (_finished) return;
            _finished = true;
            if (Style == ProgressStyle.Bar && _drawnLength > 0)
            {
                _writer.Write("\r" + new string(' ', _drawnLength) + "\r");
                _writer.Flush();
            }
        }
    }

    private void Redraw()
    {
        lock (_lock)
        {
            if (!_finished && _current is { } current) Draw(current);
        }
    }

    private void Draw(QuantizationProgress value)
    {
        string bar = value.Total is > 0 and var total
            ? "[" + new string('#', Math.Min(BarWidth, value.Completed * BarWidth / total)).PadRight(BarWidth, '.') + "] "
            : "";
        string line = $"{bar}{value.Stage}{Count(value)}  {Elapsed()}";
        _writer.Write("\r" + line.PadRight(_drawnLength));
        _writer.Flush();
        _drawnLength = line.Length;
    }

    private static bool IsOneTwoFive(int n)
    {
        if (n <= 0) return false;
        while (n % 10 == 0) n /= 10;
        return n is 1 or 2 or 5;
    }

    private static string Count(QuantizationProgress value) =>
        value.Total is > 0 and var total ? string.Create(CultureInfo.InvariantCulture, $" {value.Completed}/{total}")
        : value.Completed > 0 ? string.Create(CultureInfo.InvariantCulture, $" {value.Completed}") : "";

    private string Elapsed() => _clock.Elapsed.ToString(@"mm\:ss", CultureInfo.InvariantCulture);
}
