namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The spatial attributes of a sliding-window op (Conv, ConvTranspose, the pools): auto_pad, kernel_shape,
/// strides, dilations, pads, ceil_mode. Read and checked once at load; resolved against each input shape.
/// </summary>
internal sealed class WindowAttributes
{
    /// <summary>The most spatial axes the kernels handle (1-D, 2-D and 3-D windows).</summary>
    public const int MaxSpatialRank = 3;

    public string AutoPad { get; private init; } = "NOTSET";

    public int[]? KernelShape { get; private init; }

    public int[]? Strides { get; private init; }

    public int[]? Dilations { get; private init; }

    public int[]? Pads { get; private init; }

    public bool CeilMode { get; private init; }

    /// <summary>The spatial rank the attributes fix, or 0 when none of them has a length.</summary>
    public int SpatialRank => KernelShape?.Length ?? Strides?.Length ?? Dilations?.Length ?? (Pads?.Length / 2) ?? 0;

    public static WindowAttributes Read(OperatorBuildContext context)
    {
        string autoPad = context.String("auto_pad", "NOTSET");
        if (autoPad is not ("NOTSET" or "SAME_UPPER" or "SAME_LOWER" or "VALID"))
            throw context.Unsupported($"auto_pad '{autoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
        var attributes = new WindowAttributes
        {
            AutoPad = autoPad,
            KernelShape = Positive(context, "kernel_shape"),
            Strides = Positive(context, "strides"),
            Dilations = Positive(context, "dilations"),
            Pads = context.Ints("pads") is { Length: > 0 } pads ? pads.Select(p => checked((int)p)).ToArray() : null,
            CeilMode = context.Int("ceil_mode", 0) != 0,
        };
        if (attributes.Pads is { } p)
        {
            if (p.Length % 2 != 0) throw context.Unsupported($"pads has {p.Length} values, not two per spatial axis");
            if (p.Any(v => v < 0)) throw context.Unsupported("negative pads");
        }
        int rank = attributes.SpatialRank;
        if (rank > MaxSpatialRank) throw context.Unsupported($"{rank} spatial axes (the runtime handles 1 to {MaxSpatialRank})");
        foreach (var (name, values, expected) in new[]
                 {
                     ("kernel_shape", attributes.KernelShape, rank), ("strides", attributes.Strides, rank),
                     ("dilations", attributes.Dilations, rank), ("pads", attributes.Pads, 2 * rank),
                 })
        {
            if (values is not null && values.Length != expected)
                throw context.Unsupported($"{name} has {values.Length} values for {rank} spatial axes");
        }
        return attributes;
    }

    private static int[]? Positive(OperatorBuildContext context, string name)
    {
        if (context.Ints(name) is not { Length: > 0 } values) return null;
        if (values.Any(v => v <= 0)) throw context.Unsupported($"{name} must be positive");
        return values.Select(v => checked((int)v)).ToArray();
    }

    /// <summary>
    /// The window over <paramref name="input"/> (the spatial dims of X) with <paramref name="kernel"/>:
    /// explicit or automatic pads and the output size (floor, or ceil without windows that start in the end padding).
    /// </summary>
    public WindowGeometry Resolve(ReadOnlySpan<int> input, ReadOnlySpan<int> kernel, string node)
    {
        int rank = input.Length;
        if (rank is 0 or > MaxSpatialRank)
            throw new InvalidOperationException($"{node}: input with {rank} spatial axes (the runtime handles 1 to {MaxSpatialRank}).");
        if (kernel.Length != rank)
            throw new InvalidOperationException($"{node}: the kernel has {kernel.Length} axes, the input {rank} spatial axes.");
        var g = WindowGeometry.Identity(rank);
        int lead = MaxSpatialRank - rank;
        for (int i = 0; i < rank; i++)
        {
            int a = lead + i;
            int size = input[i], k = kernel[i], s = Strides?[i] ?? 1, d = Dilations?[i] ?? 1;
            int extent = (k - 1) * d + 1;
            int begin = 0, end = 0, output;
            switch (AutoPad)
            {
                case "SAME_UPPER":
                case "SAME_LOWER":
                {
                    output = (size + s - 1) / s;
                    int total = Math.Max(0, (output - 1) * s + extent - size);
                    begin = AutoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                    end = total - begin;
                    break;
                }
                default:
                {
                    if (AutoPad == "NOTSET" && Pads is { } pads)
                    {
                        begin = pads[i];
                        end = pads[i + rank];
                    }
                    int span = size + begin + end - extent;
                    if (span < 0) throw new InvalidOperationException($"{node}: the window ({extent}) is larger than the padded input ({size + begin + end}) on spatial axis {i}.");
                    if (CeilMode)
                    {
                        output = (span + s - 1) / s + 1;
                        // A last window that would start inside the end padding is dropped (as PyTorch and ONNX Runtime do).
                        if ((output - 1) * s >= size + begin) output--;
                    }
                    else
                    {
                        output = span / s + 1;
                    }
                    break;
                }
            }
            g.Input[a] = size;
            g.Kernel[a] = k;
            g.Stride[a] = s;
            g.Dilation[a] = d;
            g.PadBegin[a] = begin;
            g.PadEnd[a] = end;
            g.Output[a] = output;
        }
        g.TabulateTaps();
        return g;
    }
}

/// <summary>
/// A resolved window, always over three spatial axes (depth, height, width): 1-D and 2-D inputs get leading
/// axes of size 1 with a kernel of 1, so one set of loops serves every rank.
/// </summary>
internal sealed class WindowGeometry
{
    public int Rank { get; private init; }
    public int[] Input { get; } = [1, 1, 1];
    public int[] Kernel { get; } = [1, 1, 1];
    public int[] Stride { get; } = [1, 1, 1];
    public int[] Dilation { get; } = [1, 1, 1];
    public int[] PadBegin { get; } = [0, 0, 0];
    public int[] PadEnd { get; } = [0, 0, 0];
    public int[] Output { get; } = [1, 1, 1];

    public static WindowGeometry Identity(int rank) => new() { Rank = rank };

    public int InputSize => Input[0] * Input[1] * Input[2];

    public int OutputSize => Output[0] * Output[1] * Output[2];

    public int KernelSize => Kernel[0] * Kernel[1] * Kernel[2];

    /// <summary>The output's spatial dims at the original rank.</summary>
    public int[] OutputSpatial => Output[(WindowAttributes.MaxSpatialRank - Rank)..];

    /// <summary>[N, C, spatial...] for the output.</summary>
    public int[] OutputShape(int batch, int channels) => [batch, channels, .. OutputSpatial];

    /// <summary>Per axis and output position, the first kernel tap inside the input (filled by <see cref="TabulateTaps"/>).</summary>
    public int[][] FirstTap { get; } = new int[3][];

    /// <summary>Per axis and output position, one past the last kernel tap inside the input.</summary>
    public int[][] EndTap { get; } = new int[3][];

    /// <summary>Fills <see cref="FirstTap"/> and <see cref="EndTap"/> once, so the window loops only read them.</summary>
    public void TabulateTaps()
    {
        for (int axis = 0; axis < 3; axis++)
        {
            FirstTap[axis] = new int[Output[axis]];
            EndTap[axis] = new int[Output[axis]];
            for (int o = 0; o < Output[axis]; o++) (FirstTap[axis][o], EndTap[axis][o]) = Taps(axis, o);
        }
    }

    /// <summary>The first and one-past-last kernel taps along <paramref name="axis"/> that land inside the input for output position <paramref name="o"/>.</summary>
    public (int First, int End) Taps(int axis, int o)
    {
        int start = o * Stride[axis] - PadBegin[axis], d = Dilation[axis], k = Kernel[axis], size = Input[axis];
        int first = start >= 0 ? 0 : (-start + d - 1) / d;
        int end = size - start <= 0 ? 0 : Math.Min(k, (size - start + d - 1) / d);
        return (first, Math.Max(first, end));
    }
}
