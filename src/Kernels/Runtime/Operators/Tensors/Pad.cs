using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Pad: the input grown (or, with negative pads, cropped) along each axis, the new elements a constant or
/// taken from the input by reflection, edge replication or wrapping. Pads, value and axes are attributes
/// before opset 11, then inputs (axes from opset 18); wrap is from opset 19.
/// </summary>
[OnnxOperator("Pad", 1)]
internal sealed class Pad(Pad.Mode mode, long[]? fixedPads, double attributeValue, bool fromInputs) : Operator
{
    internal enum Mode { Constant, Reflect, Edge, Wrap }

    public static Operator Create(OperatorBuildContext context)
    {
        string name = context.String("mode", "constant");
        var mode = name switch
        {
            "constant" => Mode.Constant,
            "reflect" => Mode.Reflect,
            "edge" => Mode.Edge,
            "wrap" when context.Opset >= 19 => Mode.Wrap,
            _ => throw context.Unsupported($"mode '{name}'"),
        };
        if (context.Opset < 11)
        {
            var pads = context.Ints(context.Opset < 2 ? "paddings" : "pads") ?? throw context.Unsupported("Pad without pads");
            return new Pad(mode, pads, context.Float("value", 0f), fromInputs: false);
        }
        if (!context.HasInput(1)) throw context.Unsupported("Pad without a pads input");
        // Pads known at load are read once (when no axes input could change their meaning).
        var constantPads = context.HasInput(3) ? null : context.ConstantInput(1);
        return new Pad(mode, constantPads is null ? null : Elements.Integers(constantPads, context.Label, "pads"), 0, fromInputs: true);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        string node = call.Context.Node;
        int rank = input.Rank;
        var pads = fixedPads ?? Elements.Integers(call.Input(1), node, "pads");
        var axes = fromInputs && call.OptionalInput(3) is { } axesInput ? Elements.Integers(axesInput, node, "axes") : null;

        var begin = new int[rank];
        var end = new int[rank];
        int count = axes?.Length ?? rank;
        if (pads.Length != 2 * count)
            throw new InvalidOperationException($"{node}: {pads.Length} pads for {count} axes of {input}.");
        for (int i = 0; i < count; i++)
        {
            int axis = axes is null ? i : Elements.Axis(axes[i], rank, node);
            begin[axis] = checked((int)pads[i]);
            end[axis] = checked((int)pads[i + count]);
        }
        var shape = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int size = input.Shape[d];
            shape[d] = size + begin[d] + end[d];
            if (shape[d] < 0) throw new InvalidOperationException($"{node}: pads [{string.Join(", ", pads)}] crop {input} below nothing.");
            if (mode != Mode.Constant && size == 0 && shape[d] > 0)
                throw new InvalidOperationException($"{node}: cannot pad the empty axis {d} of {input} in {mode} mode.");
        }

        // The constant: the constant_value input (opset 11+), the value attribute before, zero (or "") by default.
        Tensor? value = null;
        if (mode == Mode.Constant)
        {
            value = fromInputs
                ? call.OptionalInput(2) is { Length: > 0 } given ? given : null
                : attributeValue != 0 ? Scalar(input.ElementType, attributeValue, node) : null;
            if (value is not null && value.ElementType != input.ElementType)
                throw new InvalidOperationException($"{node}: constant_value is {value.ElementType.DisplayName()}, the data {input.ElementType.DisplayName()}.");
        }

        if (begin.AsSpan().IndexOfAnyExcept(0) < 0 && end.AsSpan().IndexOfAnyExcept(0) < 0)
        {
            call.OutputView(0, input, shape); // nothing to pad
            return;
        }
        var output = call.Output(0, input.ElementType, shape);
        var move = new Move(input, output, begin, value, mode);
        Elements.Dispatch(input, ref move);
    }

    /// <summary>The value attribute (a float) as a one-element tensor of the data's type.</summary>
    private static Tensor Scalar(TensorElementType type, double value, string node) => type switch
    {
        TensorElementType.Float32 => Tensor.Create(new[] { (float)value }, 1),
        TensorElementType.Float64 => Tensor.Create(new[] { value }, 1),
        TensorElementType.Float16 => Tensor.Create(new[] { (Half)value }, 1),
        TensorElementType.BFloat16 => Tensor.Create(new[] { RangeOperator.ToBFloat16((float)value) }, TensorElementType.BFloat16, 1),
        TensorElementType.Int8 => Tensor.Create(new[] { (sbyte)value }, 1),
        TensorElementType.UInt8 => Tensor.Create(new[] { (byte)value }, 1),
        TensorElementType.Int16 => Tensor.Create(new[] { (short)value }, 1),
        TensorElementType.UInt16 => Tensor.Create(new[] { (ushort)value }, 1),
        TensorElementType.Int32 => Tensor.Create(new[] { (int)value }, 1),
        TensorElementType.UInt32 => Tensor.Create(new[] { (uint)value }, 1),
        TensorElementType.Int64 => Tensor.Create(new[] { (long)value }, 1),
        TensorElementType.UInt64 => Tensor.Create(new[] { (ulong)value }, 1),
        TensorElementType.Bool => Tensor.Create(new[] { value != 0 }, 1),
        _ => throw new NotSupportedException($"{node}: Pad of {type.DisplayName()} with a value attribute is not supported."),
    };

    /// <summary>The input index output index <paramref name="o"/> reads along an axis (non-constant modes).</summary>
    internal static int Source(int o, int begin, int size, Mode mode)
    {
        int i = o - begin;
        if (i >= 0 && i < size) return i;
        switch (mode)
        {
            case Mode.Edge:
                return Math.Clamp(i, 0, size - 1);
            case Mode.Wrap:
                return ((i % size) + size) % size;
            default:
                if (size == 1) return 0;
                // Reflection without the edge repeated is periodic with period 2 (size - 1).
                int period = 2 * (size - 1);
                int m = ((i % period) + period) % period;
                return m < size ? m : period - m;
        }
    }

    private readonly struct Move(Tensor input, Tensor output, int[] begin, Tensor? value, Mode mode) : IElementMove
    {
        public void Run<T>()
        {
            var src = Elements.Span<T>(input);
            var dst = Elements.Span<T>(output);
            if (dst.Length == 0) return;
            int rank = input.Rank;
            if (rank == 0)
            {
                dst[0] = src[0];
                return;
            }
            var inStrides = Elements.Strides(input.Shape);
            var outStrides = Elements.Strides(output.Shape);

            // The part of the input that survives cropping, and where it lands.
            var counts = new int[rank];
            int srcOffset = 0, dstOffset = 0;
            for (int d = 0; d < rank; d++)
            {
                int size = input.Shape[d], b = begin[d], e = output.Shape[d] - size - b;
                int skip = Math.Max(0, -b);
                counts[d] = Math.Max(0, size - skip - Math.Max(0, -e));
                srcOffset += skip * inStrides[d];
                dstOffset += Math.Max(0, b) * outStrides[d];
            }

            if (mode == Mode.Constant)
            {
                T fill = value is null ? (typeof(T) == typeof(string) ? (T)(object)"" : default!) : Elements.Span<T>(value)[0];
                dst.Fill(fill);
                StridedCopy.Run<T>(src, srcOffset, inStrides, dst, dstOffset, outStrides, counts);
                return;
            }

            // Other modes: every output index maps to an input index along each axis.
            var maps = new int[rank][];
            for (int d = 0; d < rank; d++)
            {
                maps[d] = new int[output.Shape[d]];
                for (int o = 0; o < maps[d].Length; o++) maps[d][o] = Source(o, begin[d], input.Shape[d], mode);
            }
            int last = rank - 1, width = output.Shape[last];
            int middleStart = Math.Max(0, begin[last]), middle = counts[last], middleSkip = Math.Max(0, -begin[last]);
            var lastMap = maps[last];
            int rows = dst.Length / width;
            var index = new int[rank];
            for (int r = 0, t = 0; r < rows; r++, t += width)
            {
                int row = 0;
                for (int d = 0; d < last; d++) row += maps[d][index[d]] * inStrides[d];
                for (int o = 0; o < middleStart; o++) dst[t + o] = src[row + lastMap[o]];
                src.Slice(row + middleSkip, middle).CopyTo(dst.Slice(t + middleStart, middle)); // the input row itself, as one block
                for (int o = middleStart + middle; o < width; o++) dst[t + o] = src[row + lastMap[o]];
                for (int d = last - 1; d >= 0; d--)
                {
                    if (++index[d] < output.Shape[d]) break;
                    index[d] = 0;
                }
            }
        }
    }
}
