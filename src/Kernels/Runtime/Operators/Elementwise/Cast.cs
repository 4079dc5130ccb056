using System.Globalization;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Cast between float32, float64, float16, bfloat16, the 8- to 64-bit integers, bool, string, and int4/uint4;
/// the 8-bit floats can be read (cast from) but not written. Floats become integers truncated toward zero,
/// then wrapped to the target's width (numpy's astype); to bfloat16 rounds to nearest even; to bool is x != 0.
/// </summary>
[OnnxOperator("Cast", 1)]
internal sealed class Cast(TensorElementType target) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var to = context.Attribute("to") ?? throw context.Unsupported("Cast without a 'to' attribute");
        TensorElementType target;
        if (to.Type == AttributeProto.Types.AttributeType.String || (to.S.Length > 0 && to.I == 0))
        {
            // Cast-1 named the type ("FLOAT", "INT32", ...).
            string name = to.S.ToStringUtf8();
            target = Enum.TryParse<TensorProto.Types.DataType>(name.Replace("_", ""), ignoreCase: true, out var parsed)
                ? OnnxElementTypes.ToElementType((int)parsed)
                : TensorElementType.Undefined;
        }
        else
        {
            target = OnnxElementTypes.ToElementType((int)to.I);
        }
        if (!CanWrite(target)) throw context.Unsupported($"casting to {target.DisplayName()} is not implemented");
        var source = InputType(context);
        if (source != TensorElementType.Undefined && !CanRead(source)) throw context.Unsupported($"casting from {source.DisplayName()} is not implemented");
        return new Cast(target);
    }

    private static bool CanWrite(TensorElementType type) => type is TensorElementType.Float32 or TensorElementType.Float64
        or TensorElementType.Float16 or TensorElementType.BFloat16 or TensorElementType.Int8 or TensorElementType.UInt8
        or TensorElementType.Int16 or TensorElementType.UInt16 or TensorElementType.Int32 or TensorElementType.UInt32
        or TensorElementType.Int64 or TensorElementType.UInt64 or TensorElementType.Bool or TensorElementType.String
        or TensorElementType.Int4 or TensorElementType.UInt4;

    private static bool CanRead(TensorElementType type) => CanWrite(type) || Float8.IsFloat8(type);

    /// <summary>The declared type of the node's input, when the graph says (an input, initializer, value_info or output).</summary>
    private static TensorElementType InputType(OperatorBuildContext context)
    {
        if (!context.HasInput(0)) return TensorElementType.Undefined;
        string name = context.Node.Input[0];
        var graph = context.Model.Graph;
        var info = graph.Input.Concat(graph.ValueInfo).Concat(graph.Output).FirstOrDefault(v => v.Name == name);
        if (info?.Type?.TensorType is { } tensor) return OnnxElementTypes.ToElementType(tensor.ElemType);
        var initializer = graph.Initializer.FirstOrDefault(t => t.Name == name);
        return initializer is null ? TensorElementType.Undefined : OnnxElementTypes.ToElementType(initializer.DataType);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        var type = x.ElementType;
        if (type == target)
        {
            call.OutputView(0, x, x.ShapeArray);
            return;
        }
        if (!CanRead(type)) throw new NotSupportedException($"{call.Context.Node}: casting from {type.DisplayName()} is not supported.");
        var output = call.Output(0, target, x.ShapeArray);
        switch (type)
        {
            case TensorElementType.Float32: From(x.AsSpan<float>(), output); break;
            case TensorElementType.Float64: From(x.AsSpan<double>(), output); break;
            case TensorElementType.Float16: From(x.AsSpan<Half>(), output); break;
            case TensorElementType.Int8 or TensorElementType.Int4: From(x.AsSpan<sbyte>(), output); break;
            case TensorElementType.UInt8 or TensorElementType.UInt4: From(x.AsSpan<byte>(), output); break;
            case TensorElementType.Int16: From(x.AsSpan<short>(), output); break;
            case TensorElementType.UInt16: From(x.AsSpan<ushort>(), output); break;
            case TensorElementType.Int32: From(x.AsSpan<int>(), output); break;
            case TensorElementType.UInt32: From(x.AsSpan<uint>(), output); break;
            case TensorElementType.Int64: From(x.AsSpan<long>(), output); break;
            case TensorElementType.UInt64: From(x.AsSpan<ulong>(), output); break;
            case TensorElementType.Bool: From(MemoryMarshal.Cast<bool, byte>(x.AsSpan<bool>()), output); break;
            case TensorElementType.BFloat16:
            {
                var bits = x.AsSpan<ushort>();
                var wide = new float[bits.Length];
                for (int i = 0; i < bits.Length; i++) wide[i] = BitConverter.Int32BitsToSingle(bits[i] << 16);
                From<float>(wide, output);
                break;
            }
            case TensorElementType.String: FromStrings(x.AsSpan<string>(), output, call); break;
            default:
            {
                var wide = new float[x.Length];
                Float8.Decode(type, x.AsSpan<byte>(), wide);
                From<float>(wide, output);
                break;
            }
        }
    }

    private void From<TFrom>(ReadOnlySpan<TFrom> x, Tensor output) where TFrom : unmanaged, INumberBase<TFrom>
    {
        switch (target)
        {
            case TensorElementType.Float32: ToNumber(x, output.AsSpan<float>()); break;
            case TensorElementType.Float64: ToNumber(x, output.AsSpan<double>()); break;
            case TensorElementType.Float16: ToNumber(x, output.AsSpan<Half>()); break;
            case TensorElementType.Int8: ToNumber(x, output.AsSpan<sbyte>()); break;
            case TensorElementType.UInt8: ToNumber(x, output.AsSpan<byte>()); break;
            case TensorElementType.Int16: ToNumber(x, output.AsSpan<short>()); break;
            case TensorElementType.UInt16: ToNumber(x, output.AsSpan<ushort>()); break;
            case TensorElementType.Int32: ToNumber(x, output.AsSpan<int>()); break;
            case TensorElementType.UInt32: ToNumber(x, output.AsSpan<uint>()); break;
            case TensorElementType.Int64: ToNumber(x, output.AsSpan<long>()); break;
            case TensorElementType.UInt64: ToNumber(x, output.AsSpan<ulong>()); break;
            case TensorElementType.Bool:
            {
                var d = output.AsSpan<bool>();
                for (int i = 0; i < x.Length; i++) d[i] = !TFrom.IsZero(x[i]);
                break;
            }
            case TensorElementType.BFloat16:
            {
                var wide = new float[x.Length];
                ToNumber(x, wide.AsSpan());
                var d = output.AsSpan<ushort>();
                for (int i = 0; i < wide.Length; i++) d[i] = ToBFloat16(wide[i]);
                break;
            }
            case TensorElementType.Int4:
            {
                // Wrapped to 4 bits and sign-extended, as ONNX's reference does.
                var d = output.AsSpan<sbyte>();
                for (int i = 0; i < x.Length; i++) d[i] = (sbyte)((sbyte)(ToInteger<TFrom, long>(x[i]) << 4) >> 4);
                break;
            }
            case TensorElementType.UInt4:
            {
                var d = output.AsSpan<byte>();
                for (int i = 0; i < x.Length; i++) d[i] = (byte)(ToInteger<TFrom, long>(x[i]) & 0xF);
                break;
            }
            case TensorElementType.String:
            {
                var d = output.AsSpan<string>();
                for (int i = 0; i < x.Length; i++) d[i] = Format(x[i]);
                break;
            }
            default:
                throw new InvalidOperationException($"Cast to {target.DisplayName()} was accepted at load but has no conversion.");
        }
    }

    private static void ToNumber<TFrom, TTo>(ReadOnlySpan<TFrom> x, Span<TTo> d)
        where TFrom : unmanaged, INumberBase<TFrom>
        where TTo : unmanaged, INumberBase<TTo>
    {
        if (IsFloat<TFrom>() && !IsFloat<TTo>())
        {
            for (int i = 0; i < x.Length; i++) d[i] = ToInteger<TFrom, TTo>(x[i]);
            return;
        }
        // float32 <-> float16 have vectorized conversions of their own.
        if (typeof(TFrom) == typeof(float) && typeof(TTo) == typeof(Half))
            TensorPrimitives.ConvertToHalf(MemoryMarshal.Cast<TFrom, float>(x), MemoryMarshal.Cast<TTo, Half>(d));
        else if (typeof(TFrom) == typeof(Half) && typeof(TTo) == typeof(float))
            TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<TFrom, Half>(x), MemoryMarshal.Cast<TTo, float>(d));
        else
            TensorPrimitives.ConvertTruncating(x, d); // integer to integer wraps; anything to a float rounds to nearest
    }

    private static bool IsFloat<T>() => typeof(T) == typeof(float) || typeof(T) == typeof(double) || typeof(T) == typeof(Half);

    /// <summary>A number as an integer: floats truncated toward zero (NaN is 0) and then wrapped; integers wrapped.</summary>
    private static TTo ToInteger<TFrom, TTo>(TFrom x)
        where TFrom : INumberBase<TFrom>
        where TTo : INumberBase<TTo>
    {
        if (!IsFloat<TFrom>()) return TTo.CreateTruncating(x);
        if (typeof(TTo) == typeof(ulong) && TFrom.IsPositive(x)) return TTo.CreateSaturating(x); // beyond long's range
        return TTo.CreateTruncating(long.CreateSaturating(x));
    }

    /// <summary>float32 to bfloat16 bits, rounded to nearest even; NaN stays a (quiet) NaN.</summary>
    internal static ushort ToBFloat16(float value)
    {
        if (float.IsNaN(value)) return 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }

    private static string Format<T>(T value) where T : INumberBase<T>
    {
        if (T.IsNaN(value)) return "NaN";
        if (T.IsInfinity(value)) return T.IsNegative(value) ? "-INF" : "INF";
        return value.ToString(null, CultureInfo.InvariantCulture);
    }

    private void FromStrings(ReadOnlySpan<string> x, Tensor output, OperatorCall call)
    {
        bool integral = target is not (TensorElementType.Float32 or TensorElementType.Float64 or TensorElementType.Float16
            or TensorElementType.BFloat16 or TensorElementType.Bool);
        if (integral)
        {
            // Through long (or ulong's bits), so that 64-bit integers keep every digit; wrapped to the target after.
            var whole = new long[x.Length];
            for (int i = 0; i < x.Length; i++)
            {
                string s = x[i].Trim();
                whole[i] = long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) ? l
                    : ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong u) ? (long)u
                    : ToInteger<double, long>(Parse(x[i], call));
            }
            From<long>(whole, output);
            return;
        }
        var values = new double[x.Length];
        for (int i = 0; i < x.Length; i++) values[i] = Parse(x[i], call);
        From<double>(values, output);
    }

    private static double Parse(string text, OperatorCall call)
    {
        string s = text.Trim();
        return s.ToUpperInvariant() switch
        {
            "INF" or "+INF" or "INFINITY" or "+INFINITY" => double.PositiveInfinity,
            "-INF" or "-INFINITY" => double.NegativeInfinity,
            "NAN" or "+NAN" or "-NAN" => double.NaN,
            _ => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) ? parsed
                : throw new FormatException($"{call.Context.Node}: '{text}' is not a number."),
        };
    }
}
