using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;

namespace Quantize.Kernels.Tests.TensorFlow;

/// <summary>
/// A float64 evaluator for MLP GraphDefs (Placeholder, Const, Identity, MatMul, Add/BiasAdd, Relu), independent of the runtime:
/// it walks the GraphDef itself, reading constants with the model's tensor codec.
/// </summary>
internal static class MlpReference
{
    public static double[] Evaluate(GraphDefModel model, string fetch, double[] input, int rows)
    {
        var nodes = model.Proto.Node.ToDictionary(n => n.Name);
        var cache = new Dictionary<string, (double[] Values, int Rows, int Columns)>();

        (double[] Values, int Rows, int Columns) Value(string name)
        {
            name = GraphDefInput.Parse(name).Node;
            if (cache.TryGetValue(name, out var known)) return known;
            var node = nodes[name];
            (double[], int, int) result;
            switch (node.Op)
            {
                case "Placeholder":
                    result = (input, rows, input.Length / rows);
                    break;
                case "Const":
                {
                    var data = model.ReadTensor(GraphDefModel.ConstValue(node)!, name);
                    var values = data.AsSpan<float>().ToArray().Select(v => (double)v).ToArray();
                    var shape = data.Shape.ToArray();
                    result = shape.Length == 2 ? (values, (int)shape[0], (int)shape[1]) : (values, 1, values.Length);
                    break;
                }
                case "Identity":
                    result = Value(node.Input[0]);
                    break;
                case "MatMul":
                {
                    var (a, m, k) = Value(node.Input[0]);
                    var (b, _, n) = Value(node.Input[1]);
                    var c = new double[m * n];
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                        {
                            double sum = 0;
                            for (int p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
                            c[i * n + j] = sum;
                        }
                    result = (c, m, n);
                    break;
                }
                case "Add" or "BiasAdd":
                {
                    var (a, m, n) = Value(node.Input[0]);
                    var (bias, _, _) = Value(node.Input[1]);
                    result = (a.Select((v, i) => v + bias[i % n]).ToArray(), m, n);
                    break;
                }
                case "Relu":
                {
                    var (a, m, n) = Value(node.Input[0]);
                    result = (a.Select(v => Math.Max(v, 0)).ToArray(), m, n);
                    break;
                }
                default:
                    throw new NotSupportedException($"the reference does not evaluate {node.Op} ('{name}').");
            }
            cache[name] = result;
            return result;
        }

        return Value(fetch).Values;
    }
}
