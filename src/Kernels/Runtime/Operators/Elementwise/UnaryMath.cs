using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The one-input math functions: Abs, Neg, Reciprocal, Floor, Ceil, Sqrt, Exp, Log, Sigmoid, Tanh, Erf.
/// float32 and float64 run on TensorPrimitives (Erf on <see cref="ErfKernel"/>), float16 through float32;
/// Abs and Neg also take the integer types.
/// </summary>
[OnnxOperator("Abs", 1)]
[OnnxOperator("Neg", 1)]
[OnnxOperator("Reciprocal", 1)]
[OnnxOperator("Floor", 1)]
[OnnxOperator("Ceil", 1)]
[OnnxOperator("Sqrt", 1)]
[OnnxOperator("Exp", 1)]
[OnnxOperator("Log", 1)]
[OnnxOperator("Sigmoid", 1)]
[OnnxOperator("Tanh", 1)]
[OnnxOperator("Erf", 9)]
internal sealed class UnaryMath(string op) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new UnaryMath(context.Node.OpType);

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        var type = x.ElementType;
        bool integerOp = op is "Abs" or "Neg";
        switch (type)
        {
            case TensorElementType.Float32:
            {
                var source = (float[])x.Buffer.Data;
                var target = (float[])call.Output(0, type, x.ShapeArray).Buffer.Data;
                if (op == "Erf") FloatKernel.Map(default(ErfKernel), source, target, x.Length, call.Context.DegreeOfParallelism);
                else ParallelRanges.ForElements(x.Length, call.Context.DegreeOfParallelism, (start, end) => Floating<float>(source.AsSpan(start, end - start), target.AsSpan(start, end - start)));
                break;
            }
            case TensorElementType.Float64:
            {
                var source = x.AsSpan<double>();
                var target = call.Output(0, type, x.ShapeArray).AsSpan<double>();
                if (op == "Erf") FloatKernel.Map(default(ErfKernel), source, target);
                else Floating<double>(source, target);
                break;
            }
            case TensorElementType.Float16:
                FloatWidening.Any(call, (c, _) => Run(c));
                break;
            case TensorElementType.Int8 when integerOp: Integer<sbyte>(call, x); break;
            case TensorElementType.Int16 when integerOp: Integer<short>(call, x); break;
            case TensorElementType.Int32 when integerOp: Integer<int>(call, x); break;
            case TensorElementType.Int64 when integerOp: Integer<long>(call, x); break;
            case TensorElementType.UInt8 when op == "Abs": Integer<byte>(call, x); break;
            case TensorElementType.UInt16 when op == "Abs": Integer<ushort>(call, x); break;
            case TensorElementType.UInt32 when op == "Abs": Integer<uint>(call, x); break;
            case TensorElementType.UInt64 when op == "Abs": Integer<ulong>(call, x); break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: {op} of {type.DisplayName()} is not supported.");
        }
    }

    private void Floating<T>(ReadOnlySpan<T> x, Span<T> d) where T : IFloatingPointIeee754<T>
    {
        switch (op)
        {
            case "Abs": TensorPrimitives.Abs(x, d); break;
            case "Neg": TensorPrimitives.Negate(x, d); break;
            case "Reciprocal": TensorPrimitives.Reciprocal(x, d); break;
            case "Floor": TensorPrimitives.Floor(x, d); break;
            case "Ceil": TensorPrimitives.Ceiling(x, d); break;
            case "Sqrt": TensorPrimitives.Sqrt(x, d); break;
            case "Exp": TensorPrimitives.Exp(x, d); break;
            case "Log": TensorPrimitives.Log(x, d); break;
            case "Sigmoid": TensorPrimitives.Sigmoid(x, d); break;
            case "Tanh": TensorPrimitives.Tanh(x, d); break;
            default: throw new InvalidOperationException($"UnaryMath has no floating-point form of {op}.");
        }
    }

    // Integer Abs and Neg wrap at the type's minimum, as the two's-complement hardware (and numpy) do.
    private void Integer<T>(OperatorCall call, Tensor x) where T : unmanaged, IBinaryInteger<T>
    {
        var source = x.AsSpan<T>();
        var target = call.Output(0, x.ElementType, x.ShapeArray).AsSpan<T>();
        bool negate = op == "Neg";
        for (int i = 0; i < source.Length; i++)
        {
            T v = source[i];
            target[i] = negate || T.IsNegative(v) ? T.Zero - v : v;
        }
    }
}
