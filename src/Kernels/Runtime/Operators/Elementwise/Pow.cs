using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Pow(X, Y) with broadcasting; the result has X's type. Float bases run on TensorPrimitives (a scalar
/// exponent of 2 or 0.5 as a multiply or square root); integer bases, and mixed types, are computed in
/// float64 and converted to X's type as numpy's power followed by a cast does.
/// </summary>
[OnnxOperator("Pow", 1)]
internal sealed class Pow : Operator
{
    public static Operator Create(OperatorBuildContext context) => LegacyBroadcast.Wrap(context, new Pow());

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        var y = call.Input(1);
        var shape = Broadcast.Shape(x.Shape, y.Shape, call.Context.Node);
        switch (x.ElementType)
        {
            case TensorElementType.Float32 when y.ElementType == TensorElementType.Float32:
                Floating<float>(x, y, call.Output(0, x.ElementType, shape));
                break;
            case TensorElementType.Float64 when y.ElementType == TensorElementType.Float64:
                Floating<double>(x, y, call.Output(0, x.ElementType, shape));
                break;
            case TensorElementType.Float16:
                FloatWidening.Any(call, (c, _) => Run(c));
                break;
            case TensorElementType.Float32: Mixed<float>(call, x, y, shape); break;
            case TensorElementType.Float64: Mixed<double>(call, x, y, shape); break;
            case TensorElementType.Int32: Mixed<int>(call, x, y, shape); break;
            case TensorElementType.Int64: Mixed<long>(call, x, y, shape); break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: Pow of {x.ElementType.DisplayName()} to {y.ElementType.DisplayName()} powers is not supported.");
        }
    }

    private static void Floating<T>(Tensor x, Tensor y, Tensor output) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (y.Length == 1 && x.Length == output.Length)
        {
            var source = x.AsSpan<T>();
            var target = output.AsSpan<T>();
            T exponent = y.AsSpan<T>()[0];
            if (exponent == T.CreateChecked(2)) TensorPrimitives.Multiply(source, source, target);
            else if (exponent == T.One) source.CopyTo(target);
            else if (exponent == T.CreateChecked(0.5)) TensorPrimitives.Sqrt(source, target);
            else TensorPrimitives.Pow(source, exponent, target);
            return;
        }
        ElementwiseBinary.Run<T, PowFunction<T>>(x, y, output);
    }

    private static void Mixed<TBase>(OperatorCall call, Tensor x, Tensor y, int[] shape) where TBase : unmanaged, INumber<TBase>
    {
        var output = call.Output(0, x.ElementType, shape);
        switch (y.ElementType)
        {
            case TensorElementType.Float32: BroadcastMap.Binary<TBase, float, TBase, MixedPow<TBase, float>>(x, y, output); break;
            case TensorElementType.Float64: BroadcastMap.Binary<TBase, double, TBase, MixedPow<TBase, double>>(x, y, output); break;
            case TensorElementType.Float16: BroadcastMap.Binary<TBase, Half, TBase, MixedPow<TBase, Half>>(x, y, output); break;
            case TensorElementType.Int8: BroadcastMap.Binary<TBase, sbyte, TBase, MixedPow<TBase, sbyte>>(x, y, output); break;
            case TensorElementType.UInt8: BroadcastMap.Binary<TBase, byte, TBase, MixedPow<TBase, byte>>(x, y, output); break;
            case TensorElementType.Int16: BroadcastMap.Binary<TBase, short, TBase, MixedPow<TBase, short>>(x, y, output); break;
            case TensorElementType.UInt16: BroadcastMap.Binary<TBase, ushort, TBase, MixedPow<TBase, ushort>>(x, y, output); break;
            case TensorElementType.Int32: BroadcastMap.Binary<TBase, int, TBase, MixedPow<TBase, int>>(x, y, output); break;
            case TensorElementType.UInt32: BroadcastMap.Binary<TBase, uint, TBase, MixedPow<TBase, uint>>(x, y, output); break;
            case TensorElementType.Int64: BroadcastMap.Binary<TBase, long, TBase, MixedPow<TBase, long>>(x, y, output); break;
            case TensorElementType.UInt64: BroadcastMap.Binary<TBase, ulong, TBase, MixedPow<TBase, ulong>>(x, y, output); break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: Pow of {x.ElementType.DisplayName()} to {y.ElementType.DisplayName()} powers is not supported.");
        }
    }
}

internal readonly struct PowFunction<T> : IBinaryFunction<T> where T : IFloatingPointIeee754<T>
{
    public static T Apply(T x, T y) => T.Pow(x, y);
    public static void Apply(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Pow(x, y, d);
    public static void Apply(ReadOnlySpan<T> x, T y, Span<T> d) => TensorPrimitives.Pow(x, y, d);
    public static void Apply(T x, ReadOnlySpan<T> y, Span<T> d) => TensorPrimitives.Pow(x, y, d);
}

/// <summary>x^y in float64, converted to x's type (truncated toward zero for integers).</summary>
internal readonly struct MixedPow<TBase, TExponent> : IElementMap<TBase, TExponent, TBase>
    where TBase : INumber<TBase>
    where TExponent : INumber<TExponent>
{
    public static TBase Apply(TBase x, TExponent y) => TBase.CreateSaturating(Math.Pow(double.CreateChecked(x), double.CreateChecked(y)));
}
