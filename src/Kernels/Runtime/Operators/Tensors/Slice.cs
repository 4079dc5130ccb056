namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Slice: a strided window of the input (starts, ends, axes as attributes before opset 10; then as inputs,
/// with steps). Negative starts and ends count from the end, out-of-range ones are clamped, negative steps walk backwards.
/// </summary>
[OnnxOperator("Slice", 1)]
internal sealed class Slice(long[]? starts, long[]? ends, long[]? axes, long[]? steps, bool fromInputs) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.Opset < 10)
        {
            return new Slice(
                context.Ints("starts") ?? throw context.Unsupported("Slice without starts"),
                context.Ints("ends") ?? throw context.Unsupported("Slice without ends"),
                context.Ints("axes"), null, fromInputs: false);
        }
        if (!context.HasInput(1) || !context.HasInput(2)) throw context.Unsupported("Slice without starts and ends inputs");
        // Inputs known at load (the usual case) are read once; any missing one is read at every run.
        long[]? Read(int index, string what) => context.ConstantInput(index) is { } c ? Elements.Integers(c, context.Label, what) : null;
        var s = Read(1, "starts");
        var e = Read(2, "ends");
        var a = Read(3, "axes");
        var st = Read(4, "steps");
        bool allKnown = s is not null && e is not null && (a is not null || !context.HasInput(3)) && (st is not null || !context.HasInput(4));
        return allKnown ? new Slice(s, e, a, st, fromInputs: false) : new Slice(null, null, null, null, fromInputs: true);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        string node = call.Context.Node;
        long[] s, e;
        long[]? a, st;
        if (fromInputs)
        {
            s = Elements.Integers(call.Input(1), node, "starts");
            e = Elements.Integers(call.Input(2), node, "ends");
            a = call.OptionalInput(3) is { } axesInput ? Elements.Integers(axesInput, node, "axes") : null;
            st = call.OptionalInput(4) is { } stepsInput ? Elements.Integers(stepsInput, node, "steps") : null;
        }
        else
        {
            (s, e, a, st) = (starts!, ends!, axes, steps);
        }

        int rank = input.Rank;
        if (e.Length != s.Length || (a is not null && a.Length != s.Length) || (st is not null && st.Length != s.Length))
            throw new InvalidOperationException($"{node}: starts, ends, axes and steps must have the same length.");
        if (a is null && s.Length > rank)
            throw new InvalidOperationException($"{node}: {s.Length} starts for rank {rank}.");

        var inputStrides = Elements.Strides(input.Shape);
        var shape = input.ShapeArray.ToArray();
        var strides = inputStrides.ToArray();
        int offset = 0;
        Span<bool> seen = rank <= 16 ? stackalloc bool[16] : new bool[rank];
        seen.Clear();
        for (int i = 0; i < s.Length; i++)
        {
            int axis = a is null ? i : Elements.Axis(a[i], rank, node);
            if (seen[axis]) throw new InvalidOperationException($"{node}: axis {axis} is sliced twice.");
            seen[axis] = true;
            long step = st is null ? 1 : st[i];
            if (step == 0) throw new InvalidOperationException($"{node}: a step is 0.");
            var (start, count) = Window(s[i], e[i], step, input.Shape[axis]);
            shape[axis] = count;
            offset += start * inputStrides[axis];
            // With two or more elements |step| is below the axis size, so the stride stays in range.
            strides[axis] = count > 1 ? (int)step * inputStrides[axis] : 0;
        }

        if (offset == 0 && shape.AsSpan().SequenceEqual(input.Shape) && strides.AsSpan().SequenceEqual(inputStrides))
        {
            call.OutputView(0, input, shape); // the whole input, in order
            return;
        }
        var output = call.Output(0, input.ElementType, shape);
        var move = new Move(input, output, offset, strides);
        Elements.Dispatch(input, ref move);
    }

    /// <summary>The first index and the element count of start:end:step over an axis of size <paramref name="dim"/>.</summary>
    internal static (int Start, int Count) Window(long start, long end, long step, int dim)
    {
        if (dim == 0) return (0, 0);
        if (start < 0) start += dim;
        if (end < 0) end += dim;
        // |step| beyond the axis takes at most one element; capping it keeps the arithmetic in range.
        step = Math.Clamp(step, -(long)dim - 1, dim + 1);
        if (step > 0)
        {
            start = Math.Clamp(start, 0, dim);
            end = Math.Clamp(end, 0, dim);
            // An empty window may start at dim; report dim - 1 so the offset stays inside the input.
            return ((int)Math.Min(start, dim - 1), end > start ? (int)((end - start + step - 1) / step) : 0);
        }
        start = Math.Clamp(start, 0, dim - 1);
        end = Math.Clamp(end, -1, dim - 1);
        return ((int)start, start > end ? (int)((start - end - step - 1) / -step) : 0);
    }

    private readonly struct Move(Tensor input, Tensor output, int offset, int[] strides) : IElementMove
    {
        public void Run<T>() =>
            StridedCopy.Run<T>(Elements.Span<T>(input), offset, strides, Elements.Span<T>(output), 0, Elements.Strides(output.Shape), output.Shape);
    }
}
