using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Range: start, start + delta, ... up to (not including) limit. Integers are computed exactly; floating types
/// in float64 and rounded once, as ONNX's reference (numpy.arange on Python scalars, then a cast) does.
/// </summary>
[OnnxOperator("Range", 11)]
internal sealed class RangeOperator : Operator
{
    public static Operator Create(OperatorBuildContext context) => new RangeOperator();

    public override void Run(OperatorCall call)
    {
        var start = call.Input(0);
        var limit = call.Input(1);
        var delta = call.Input(2);
        string node = call.Context.Node;
        var type = start.ElementType;
        if (limit.ElementType != type || delta.ElementType != type)
            throw new InvalidOperationException($"{node}: start, limit and delta must have the same type.");
        if (start.Length != 1 || limit.Length != 1 || delta.Length != 1)
            throw new InvalidOperationException($"{node}: start, limit and delta must be scalars.");

        if (type.IsFloatingPoint())
        {
            double first = Real(start), step = Real(delta), span = Real(limit) - first;
            if (step == 0) throw new InvalidOperationException($"{node}: delta is 0.");
            double steps = Math.Ceiling(span / step);
            if (!(steps <= int.MaxValue)) throw new InvalidOperationException($"{node}: the range has too many elements.");
            int count = (int)Math.Max(steps, 0);
            var output = call.Output(0, type, [count]);
            switch (type)
            {
                case TensorElementType.Float32: Fill(output.AsSpan<float>(), first, step, v => (float)v); break;
                case TensorElementType.Float64: Fill(output.AsSpan<double>(), first, step, v => v); break;
                case TensorElementType.Float16: Fill(output.AsSpan<Half>(), first, step, v => (Half)v); break;
                case TensorElementType.BFloat16: Fill(output.AsSpan<ushort>(), first, step, v => ToBFloat16((float)v)); break;
                default: throw new NotSupportedException($"{node}: Range of {type.DisplayName()} is not supported.");
            }
        }
        else
        {
            long first = Integer(start, node), step = Integer(delta, node);
            if (step == 0) throw new InvalidOperationException($"{node}: delta is 0.");
            Int128 span = (Int128)Integer(limit, node) - first;
            Int128 steps = step > 0 ? (span > 0 ? (span + step - 1) / step : 0) : (span < 0 ? (span + step + 1) / step : 0);
            if (steps > int.MaxValue) throw new InvalidOperationException($"{node}: the range has too many elements.");
            var output = call.Output(0, type, [(int)steps]);
            switch (type)
            {
                case TensorElementType.Int64: Fill(output.AsSpan<long>(), first, step, v => v); break;
                case TensorElementType.Int32: Fill(output.AsSpan<int>(), first, step, v => (int)v); break;
                case TensorElementType.Int16: Fill(output.AsSpan<short>(), first, step, v => (short)v); break;
                case TensorElementType.Int8: Fill(output.AsSpan<sbyte>(), first, step, v => (sbyte)v); break;
                case TensorElementType.UInt8: Fill(output.AsSpan<byte>(), first, step, v => (byte)v); break;
                case TensorElementType.UInt16: Fill(output.AsSpan<ushort>(), first, step, v => (ushort)v); break;
                case TensorElementType.UInt32: Fill(output.AsSpan<uint>(), first, step, v => (uint)v); break;
                case TensorElementType.UInt64: Fill(output.AsSpan<ulong>(), first, step, v => (ulong)v); break;
                default: throw new NotSupportedException($"{node}: Range of {type.DisplayName()} is not supported.");
            }
        }
    }

    // Outputs are small (index vectors): a delegate per element is fine here.
    private static void Fill<T, TValue>(Span<T> target, TValue first, TValue step, Func<TValue, T> convert)
        where TValue : System.Numerics.INumber<TValue>
    {
        for (int i = 0; i < target.Length; i++) target[i] = convert(first + TValue.CreateTruncating(i) * step);
    }

    private static double Real(Tensor scalar) => scalar.ElementType switch
    {
        TensorElementType.Float32 => scalar.AsSpan<float>()[0],
        TensorElementType.Float64 => scalar.AsSpan<double>()[0],
        TensorElementType.Float16 => (double)scalar.AsSpan<Half>()[0],
        TensorElementType.BFloat16 => BitConverter.Int32BitsToSingle(scalar.AsSpan<ushort>()[0] << 16),
        _ => throw new NotSupportedException($"Range of {scalar.ElementType.DisplayName()} is not supported."),
    };

    private static long Integer(Tensor scalar, string node) => scalar.ElementType switch
    {
        TensorElementType.Int64 => scalar.AsSpan<long>()[0],
        TensorElementType.Int32 => scalar.AsSpan<int>()[0],
        TensorElementType.Int16 => scalar.AsSpan<short>()[0],
        TensorElementType.Int8 => scalar.AsSpan<sbyte>()[0],
        TensorElementType.UInt8 => scalar.AsSpan<byte>()[0],
        TensorElementType.UInt16 => scalar.AsSpan<ushort>()[0],
        TensorElementType.UInt32 => scalar.AsSpan<uint>()[0],
        TensorElementType.UInt64 => (long)scalar.AsSpan<ulong>()[0],
        _ => throw new NotSupportedException($"{node}: Range of {scalar.ElementType.DisplayName()} is not supported."),
    };

    /// <summary>float32 to bfloat16 bits, rounding to nearest even (NaN kept quiet).</summary>
    internal static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
