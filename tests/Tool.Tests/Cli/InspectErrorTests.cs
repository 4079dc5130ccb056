using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary>
/// Broken models give exit code 3 and one line on stderr that names the file, with no stack trace
/// unless <c>--verbose</c> asks for one. The broken files are made in a temporary folder.
/// </summary>
public sealed class InspectErrorTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("quantize-inspect-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (string name in new[]
        {
            "empty file", "truncated onnx", "truncated graphdef", "random bytes", "directory", "missing path",
            "external data missing", "external data too short", "input nothing produces",
        })
        {
            data.Add(name, false);
            data.Add(name, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Invalid_model_exits_3_with_one_line_naming_the_file(string name, bool verbose)
    {
        string path = Make(name);
        string[] args = verbose ? ["inspect", path, "--json", "--verbose"] : ["inspect", path, "--json"];
        var run = CliRun.Of(args);

        Assert.Equal(3, run.ExitCode);
        Assert.Equal("", run.Stdout);
        string first = run.StderrLines[0];
        Assert.StartsWith("error: ", first);
        Assert.Contains(path, first);
        if (verbose)
        {
            Assert.Contains("   at ", run.Stderr);
        }
        else
        {
            Assert.Single(run.StderrLines);
            Assert.DoesNotContain("   at ", run.Stderr);
        }
    }

    [Fact]
    public void Messages_say_what_is_wrong()
    {
        Assert.Contains("empty", CliRun.Of("inspect", Make("empty file")).Stderr);
        Assert.Contains("not found", CliRun.Of("inspect", Make("missing path")).Stderr);
        Assert.Contains("folder", CliRun.Of("inspect", Make("directory")).Stderr);
        Assert.Contains("does not exist", CliRun.Of("inspect", Make("external data missing")).Stderr);
        Assert.Contains("too short", CliRun.Of("inspect", Make("external data too short")).Stderr);
        Assert.Contains("'nobody_makes_this'", CliRun.Of("inspect", Make("input nothing produces")).Stderr);
    }

    [Fact]
    public void The_external_data_model_inspects_while_its_data_is_whole()
    {
        string path = SaveWithExternalData();
        var json = CliRun.InspectJson(path);
        Assert.True(json.GetProperty("weightBytes").GetInt64() >= 1024);
    }

    private string Make(string name)
    {
        string path = Path.Combine(_folder, name.Replace(' ', '_'));
        switch (name)
        {
            case "empty file":
                File.WriteAllBytes(path + ".onnx", []);
                return path + ".onnx";
            case "truncated onnx":
            {
                byte[] bytes = File.ReadAllBytes(LargeInitializerModel());
                File.WriteAllBytes(path + ".onnx", bytes[..(bytes.Length / 2)]);
                return path + ".onnx";
            }
            case "truncated graphdef":
            {
                byte[] bytes = File.ReadAllBytes(SharedData.Require("tf-graphs/utensor_simple_mnist.pb"));
                File.WriteAllBytes(path + ".pb", bytes[..(bytes.Length / 2)]);
                return path + ".pb";
            }
            case "random bytes":
            {
                var bytes = new byte[4096];
                new Random(1234).NextBytes(bytes);
                File.WriteAllBytes(path + ".onnx", bytes);
                return path + ".onnx";
            }
            case "directory":
                Directory.CreateDirectory(path);
                return path;
            case "missing path":
                return path + ".onnx";
            case "external data missing":
            {
                string model = SaveWithExternalData();
                File.Delete(model + OnnxSaveOptions.DefaultLocationSuffix);
                return model;
            }
            case "external data too short":
            {
                string model = SaveWithExternalData();
                using (var data = new FileStream(model + OnnxSaveOptions.DefaultLocationSuffix, FileMode.Open))
                    data.SetLength(data.Length / 2);
                return model;
            }
            case "input nothing produces":
            {
                var model = OnnxModel.Load(LargeInitializerModel());
                model.Graph.Node[0].Input[0] = "nobody_makes_this";
                model.Save(path + ".onnx");
                return path + ".onnx";
            }
            default:
                throw new ArgumentException(name, nameof(name));
        }
    }

    /// <summary>A copy of a real model whose initializers of 1 KiB or more live in <c>model.onnx.data</c>.</summary>
    private string SaveWithExternalData()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_folder, $"external-{Guid.NewGuid():N}")).FullName;
        string path = Path.Combine(folder, "model.onnx");
        OnnxModel.Load(LargeInitializerModel()).Save(path, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        Assert.True(File.Exists(path + OnnxSaveOptions.DefaultLocationSuffix), "the model was saved without external data");
        return path;
    }

    /// <summary>The first pytorch-converted model with an initializer of at least 1 KiB (the external-data threshold).</summary>
    private static string LargeInitializerModel()
    {
        string suite = SharedData.Require("onnx-node-tests-extra/pytorch-converted");
        foreach (string dir in Directory.GetDirectories(suite).Order(StringComparer.Ordinal))
        {
            string path = Path.Combine(dir, "model.onnx");
            if (!File.Exists(path)) continue;
            var model = OnnxModel.Load(path);
            if (model.Graph.Initializer.Any(t => model.Describe(t).ByteCount >= 1024)) return path;
        }
        throw new InvalidOperationException($"No model in {suite} has an initializer of 1 KiB or more.");
    }
}
