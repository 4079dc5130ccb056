namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Resize's interpolation kernels.</summary>
internal enum ResizeMode
{
    Nearest,
    Linear,
    Cubic,
}

/// <summary>
/// One axis of a Resize: for each output index, the input indices (clamped to the edge) and their weights, or a
/// flag that the point lies outside the crop (tf_crop_and_resize) and takes the extrapolation value. Built as
/// ONNX's reference does it: the coordinate transform, then the n nearest input points, then the kernel's coefficients.
/// </summary>
internal sealed class ResizeAxis
{
    private ResizeAxis(int output, int taps)
    {
        Output = output;
        Taps = taps;
        Indices = new int[output * taps];
        Weights = new double[output * taps];
        Extrapolate = new bool[output];
    }

    public int Output { get; }

    /// <summary>Input points per output index (the same for every index of the axis).</summary>
    public int Taps { get; }

    public int[] Indices { get; }

    public double[] Weights { get; }

    public bool[] Extrapolate { get; }

    /// <summary>The coefficients, how they are placed, and the coordinate transform.</summary>
    internal sealed record Settings(ResizeMode Mode, string CoordinateMode, string NearestMode, double CubicA, bool ExcludeOutside, bool Antialias);

    public static ResizeAxis Build(Settings s, int input, int output, double scale, double roiStart, double roiEnd)
    {
        double outputWidth = scale * input;
        var probe = Coefficients(s, 0.5, scale);
        var axis = new ResizeAxis(output, probe.Length);
        int n = probe.Length, pad = (n + 1) / 2;
        for (int x = 0; x < output; x++)
        {
            double origin = Origin(s.CoordinateMode, x, input, output, outputWidth, scale, roiStart, roiEnd);
            if (s.CoordinateMode == "tf_crop_and_resize" && (origin < 0 || origin > input - 1))
            {
                axis.Extrapolate[x] = true;
                for (int t = 0; t < n; t++) axis.Indices[x * n + t] = 0;
                continue;
            }
            double floor = Math.Floor(origin);
            double ratio = origin == floor ? 1 : origin - floor;
            var coefficients = Coefficients(s, ratio, scale);

            // The n nearest integers to origin (ties to the smaller), among [-pad, input + pad): ceil(origin) centres them.
            int first = (int)Math.Ceiling(origin) - n / 2;
            first = Math.Max(-pad, Math.Min(first, input + pad - n));
            if (s.ExcludeOutside)
            {
                double sum = 0;
                for (int t = 0; t < n; t++)
                {
                    int index = first + t;
                    if (index < 0 || index >= input) coefficients[t] = 0;
                    sum += coefficients[t];
                }
                for (int t = 0; t < n; t++) coefficients[t] /= sum;
            }
            for (int t = 0; t < n; t++)
            {
                axis.Indices[x * n + t] = Math.Clamp(first + t, 0, input - 1);
                axis.Weights[x * n + t] = coefficients[t];
            }
        }
        return axis;
    }

    /// <summary>True when the axis maps every output index to the same input index with weight one.</summary>
    public bool IsIdentity(int input)
    {
        if (Output != input) return false;
        for (int x = 0; x < Output; x++)
        {
            if (Extrapolate[x]) return false;
            for (int t = 0; t < Taps; t++)
            {
                double w = Weights[x * Taps + t];
                if (w != 0 && (w != 1 || Indices[x * Taps + t] != x)) return false;
            }
        }
        return true;
    }

    private static double Origin(string mode, int x, int input, int output, double outputWidth, double scale, double roiStart, double roiEnd) => mode switch
    {
        "align_corners" => outputWidth == 1 ? 0 : x * (input - 1) / (outputWidth - 1),
        "asymmetric" => x / scale,
        "tf_crop_and_resize" => (outputWidth == 1 ? (roiEnd - roiStart) * (input - 1) / 2 : x * (roiEnd - roiStart) * (input - 1) / (outputWidth - 1))
            + roiStart * (input - 1),
        "pytorch_half_pixel" => outputWidth == 1 ? -0.5 : (x + 0.5) / scale - 0.5,
        "half_pixel_symmetric" => input / 2.0 * (1 - output / outputWidth) + (x + 0.5) / scale - 0.5,
        _ => (x + 0.5) / scale - 0.5,
    };

    private static double[] Coefficients(Settings s, double ratio, double scale)
    {
        switch (s.Mode)
        {
            case ResizeMode.Nearest:
            {
                bool ceil = ratio == 1 || s.NearestMode switch
                {
                    "round_prefer_ceil" => ratio >= 0.5,
                    "floor" => false,
                    "ceil" => true,
                    _ => ratio > 0.5,
                };
                return ceil ? [0, 1] : [1, 0];
            }
            case ResizeMode.Linear when !s.Antialias:
                return [1 - ratio, ratio];
            case ResizeMode.Linear:
            {
                double sc = Math.Min(scale, 1);
                int start = (int)Math.Floor(-1 / sc) + 1, footprint = 2 - 2 * start;
                var c = new double[footprint];
                for (int i = 0; i < footprint; i++) c[i] = Math.Clamp(1 - Math.Abs((start + i - ratio) * sc), 0, 1);
                return Normalized(c);
            }
            case ResizeMode.Cubic when !s.Antialias:
            {
                double a = s.CubicA, r = ratio;
                return
                [
                    ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                    ((a + 2) * r - (a + 3)) * r * r + 1,
                    ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                    ((a * (2 - r) - 5 * a) * (2 - r) + 8 * a) * (2 - r) - 4 * a,
                ];
            }
            default:
            {
                double sc = Math.Min(scale, 1), a = s.CubicA;
                int start = (int)Math.Floor(-2 / sc) + 1, end = 2 - start;
                var c = new double[end - start];
                for (int i = start; i < end; i++)
                {
                    double v = Math.Abs(sc * (i - ratio));
                    c[i - start] = v <= 1 ? ((a + 2) * v - (a + 3)) * v * v + 1
                        : v < 2 ? ((a * v - 5 * a) * v + 8 * a) * v - 4 * a
                        : 0;
                }
                return Normalized(c);
            }
        }
    }

    private static double[] Normalized(double[] c)
    {
        double sum = c.Sum();
        for (int i = 0; i < c.Length; i++) c[i] /= sum;
        return c;
    }
}
